"""What an operator reads of jobs: a page of jobs with their counts, a job with a page of its
executions, one execution with its attempts.

Every call runs scoped to the operator's tenant (jobs.tenant_id), which row-level security
enforces, in one transaction sent as one round trip; counts come from the count rows, never from
the executions.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from functools import cache
from typing import Any, NamedTuple

from psycopg import sql

from jobs_core.domain.models import (
    JOB_ID_PATTERN,
    Attempt,
    ExecutionDetail,
    ExecutionSummary,
    JobDetail,
    JobSummary,
    RolloutProgress,
    TargetsShown,
)
from jobs_core.domain.paging import MAX_PAGE_BYTES, decode_cursor, encode_cursor
from jobs_core.domain.statemachine import ExecutionStatus, JobStatus
from jobs_core.errors import InvalidRequest, NotFound
from jobs_core.store.db import Database

MAX_EXECUTIONS_PAGE = 1000

# Counts come from the job's count rows (at most 16), never from its executions.
SUMMARY_COLUMNS = """
    j.job_id, j.document_type, j.document_params, j.status, j.target_device_id, j.target_group_id,
    j.target_all, j.target_selection, j.expires_at, j.created_by, j.created_at, j.timeout_minutes, j.retry,
    j.scheduling, j.rollout, j.abort, j.description, j.template_id, j.presigned_url_config,
    j.updated_at,
    n.unreleased + n.queued + n.in_progress + n.succeeded + n.failed + n.rejected + n.timed_out + n.canceled
        + n.removed AS total_executions,
    n.succeeded AS succeeded_count,
    n.failed + n.timed_out + n.rejected + n.canceled AS failed_count,
    n.unreleased, n.queued, n.in_progress, n.succeeded, n.failed, n.rejected, n.timed_out, n.canceled, n.removed,
    j.released, j.rate_per_minute, j.next_release_at, j.stop_reason, j.stopped_at
"""
COUNTS = """
LEFT JOIN LATERAL (
    SELECT coalesce(sum(c.unreleased), 0)::int AS unreleased,
           coalesce(sum(c.queued), 0)::int AS queued, coalesce(sum(c.in_progress), 0)::int AS in_progress,
           coalesce(sum(c.succeeded), 0)::int AS succeeded, coalesce(sum(c.failed), 0)::int AS failed,
           coalesce(sum(c.rejected), 0)::int AS rejected, coalesce(sum(c.timed_out), 0)::int AS timed_out,
           coalesce(sum(c.canceled), 0)::int AS canceled, coalesce(sum(c.removed), 0)::int AS removed
    FROM job_execution_counts c
    WHERE c.tenant_id = j.tenant_id AND c.job_id = j.job_id
) n ON true
"""

# A page of jobs, newest first, by the index that has that order (jobs_newest_first, or with a
# status filter jobs_by_status_newest_first); counts are read for the page's jobs only.
LIST = """
SELECT {summary}
FROM (
    -- the page's keys only: an index-only scan, however many rows the offset skips
    SELECT j.tenant_id, j.job_id, j.created_at FROM jobs j
    WHERE j.tenant_id = current_setting('jobs.tenant_id', true) {filters}
    ORDER BY j.created_at DESC, j.job_id DESC
    LIMIT %(limit)s OFFSET %(offset)s
) page
JOIN jobs j ON j.tenant_id = page.tenant_id AND j.job_id = page.job_id
{counts}
ORDER BY j.created_at DESC, j.job_id DESC
"""
STATUS_FILTER = "AND j.status = %(status)s"
GROUP_FILTER = """
AND EXISTS (SELECT 1 FROM job_targets t WHERE t.tenant_id = j.tenant_id AND t.job_id = j.job_id
            AND t.kind = 'group' AND t.target_id = %(group)s)
"""
AFTER_FILTER = "AND (j.created_at, j.job_id) < (%(after_created_at)s, %(after_job_id)s)"


@cache
def _list_query(by_status: bool, after: bool, by_group: bool = False) -> sql.Composed:
    """One statement per combination of filters: each has a plan that uses its index."""
    filters = [STATUS_FILTER] * by_status + [AFTER_FILTER] * after + [GROUP_FILTER] * by_group
    return sql.SQL(LIST).format(
        summary=sql.SQL(SUMMARY_COLUMNS), filters=sql.SQL(" ".join(filters)), counts=sql.SQL(COUNTS)
    )


DETAIL = f"""
SELECT {SUMMARY_COLUMNS}, j.tenant_id,
       ARRAY(SELECT t.target_id FROM job_targets t WHERE t.tenant_id = j.tenant_id AND t.job_id = j.job_id
             AND t.kind = 'device' ORDER BY t.target_id) AS target_devices,
       ARRAY(SELECT t.target_id FROM job_targets t WHERE t.tenant_id = j.tenant_id AND t.job_id = j.job_id
             AND t.kind = 'group' ORDER BY t.target_id) AS target_groups
FROM jobs j
{COUNTS}
WHERE j.tenant_id = current_setting('jobs.tenant_id', true) AND j.job_id = %(job_id)s
"""

EXECUTION_COLUMNS = """
device_id, status, status_details, execution_number, attempt, queued_at, started_at, last_updated_at, timeout_at
"""
EXECUTIONS_PAGE = f"""
SELECT {EXECUTION_COLUMNS}
FROM job_executions
WHERE tenant_id = current_setting('jobs.tenant_id', true) AND job_id = %(job_id)s
  AND device_id > %(after)s AND (%(status)s::text IS NULL OR status = %(status)s::text)
ORDER BY device_id
LIMIT %(limit)s
"""

# One execution with the attempts before it, for an operator.
EXECUTION = f"""
SELECT job_id, {EXECUTION_COLUMNS},
       seconds_until(timeout_at) AS approximate_seconds_before_timed_out
FROM job_executions
WHERE tenant_id = current_setting('jobs.tenant_id', true) AND job_id = %(job_id)s AND device_id = %(device_id)s
"""
ATTEMPTS = """
SELECT attempt, status, status_details, started_at, finished_at
FROM job_execution_attempts
WHERE tenant_id = current_setting('jobs.tenant_id', true) AND job_id = %(job_id)s AND device_id = %(device_id)s
ORDER BY attempt
"""


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    """A job's row as JobSummary has it: counts by status, the rollout's progress."""
    counts = {status: row.pop(status.lower()) for status in ExecutionStatus}
    released = row.pop("released")
    progress = RolloutProgress(
        released=row["total_executions"] - counts[ExecutionStatus.UNRELEASED] if released is None else released,
        unreleased=counts[ExecutionStatus.UNRELEASED],
        rate_per_minute=row.pop("rate_per_minute"),
        next_release_at=row.pop("next_release_at"),
        stop_reason=row.pop("stop_reason"),
        stopped_at=row.pop("stopped_at"),
    )
    return {**row, "counts": counts, "progress": progress}


class JobsPage(NamedTuple):
    jobs: list[JobSummary]
    next_cursor: str | None  # where the next page starts; None when this one is the last


def list_jobs(
    db: Database,
    tenant_id: str,
    status: JobStatus | None,
    limit: int,
    offset: int,
    cursor: str | None = None,
    group: str | None = None,
) -> JobsPage:
    """Up to `limit` jobs, newest first, after `cursor` (or from the newest) and `offset` more. A
    page also stops short of about MAX_PAGE_BYTES (each job may carry 32 KiB of document), so the
    response stays far under Lambda's 6 MB whatever the documents."""
    after = _decode_list_cursor(cursor)
    after_created_at, after_job_id = after if after is not None else (None, None)
    params = {
        "status": status,
        "limit": limit + 1,  # one more than the page: whether there is a next one
        "offset": offset,
        "after_created_at": after_created_at,
        "after_job_id": after_job_id,
        "group": group,
    }
    with db.transaction(tenant_id=tenant_id) as conn:
        result = conn.execute(_list_query(status is not None, after is not None, group is not None), params)
    rows = result.fetchall()
    page: list[JobSummary] = []
    size = 0
    for row in rows[:limit]:
        size += 600 + len(json.dumps(row["document_params"])) + len(row["document_type"]) * 6
        if page and size > MAX_PAGE_BYTES:
            break
        page.append(JobSummary(**_summary(row)))
    more = len(page) < len(rows)
    last = page[-1] if page else None
    return JobsPage(
        page, encode_cursor(json.dumps([last.created_at.isoformat(), last.job_id])) if more and last else None
    )


def _decode_list_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    if not cursor:
        return None
    try:
        created_at, job_id = json.loads(decode_cursor(cursor))
        if not isinstance(job_id, str) or not re.fullmatch(JOB_ID_PATTERN, job_id):
            raise ValueError(job_id)
        return datetime.fromisoformat(created_at), job_id
    except (ValueError, TypeError):
        raise InvalidRequest("invalid cursor") from None


def detail(
    db: Database,
    tenant_id: str,
    job_id: str,
    limit: int,
    cursor: str | None,
    status: ExecutionStatus | None = None,
) -> JobDetail:
    """The job, its counts, and one page of its executions by device id (those in `status`
    only, when given; the cursor goes on from the last device id either way)."""
    after = decode_cursor(cursor)
    with db.transaction(tenant_id=tenant_id) as conn:
        job = conn.execute(DETAIL, {"job_id": job_id})
        page = conn.execute(EXECUTIONS_PAGE, {"job_id": job_id, "after": after, "limit": limit + 1, "status": status})
    row: dict[str, Any] | None = job.fetchone()
    if row is None:
        raise NotFound(f"job {job_id} not found")
    rows = page.fetchall()
    executions: list[ExecutionSummary] = []
    size = 0
    for e in rows[:limit]:
        size += 300 + len(json.dumps(e["status_details"])) + len(e["device_id"])
        if executions and size > MAX_PAGE_BYTES:
            break
        executions.append(ExecutionSummary(**e))
    more = len(executions) < len(rows)
    next_cursor = encode_cursor(executions[-1].device_id) if more and executions else None
    shown = TargetsShown(
        device_ids=row.pop("target_devices"), group_ids=row.pop("target_groups"), all=row["target_all"]
    )
    return JobDetail(**_summary(row), targets=shown, executions=executions, next_cursor=next_cursor)


def execution(db: Database, tenant_id: str, job_id: str, device_id: str) -> ExecutionDetail:
    """One device's execution of a job, with the attempts before this one."""
    params = {"job_id": job_id, "device_id": device_id}
    with db.transaction(tenant_id=tenant_id) as conn:
        found = conn.execute(EXECUTION, params)
        attempts = conn.execute(ATTEMPTS, params)
    row = found.fetchone()
    if row is None:
        raise NotFound(f"no execution of job {job_id} for device {device_id}")
    return ExecutionDetail(**row, attempts=[Attempt(**attempt) for attempt in attempts.fetchall()])
