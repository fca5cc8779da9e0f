"""What an operator does with jobs: create (fan out to the targets), list, read, cancel.

Every call runs scoped to the operator's tenant (jobs.tenant_id), which row-level security
enforces, in one transaction sent as one round trip.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from datetime import datetime
from functools import cache
from typing import Any, NamedTuple

import psycopg
from aws_lambda_powertools.metrics import MetricUnit
from psycopg import sql
from psycopg.types.json import Jsonb

from jobs_core.db import Database, sql_list
from jobs_core.errors import Conflict, InvalidRequest, NotFound, Refused
from jobs_core.models import (
    JOB_ID_PATTERN,
    Attempt,
    ExecutionCancel,
    ExecutionDetail,
    ExecutionSummary,
    JobCanceled,
    JobCreate,
    JobCreated,
    JobDetail,
    JobSummary,
    RolloutProgress,
)
from jobs_core.observability import metrics
from jobs_core.rollouts import Rule
from jobs_core.statemachine import Actor, ExecutionStatus, JobStatus, job_sources, sources

MAX_EXECUTIONS_PAGE = 1000
# A page also stops short of about 1 MiB (each execution may carry 4 KiB of status_details):
# a job's detail never becomes a multi-megabyte response.
MAX_PAGE_BYTES = 1024 * 1024
DEFAULT_CANCEL_REASON = "canceled by operator"

# The targets of a new job, resolved once, at creation (snapshot semantics).
TARGET_DEVICE = """
SELECT device_id FROM device_state
WHERE tenant_id = current_setting('jobs.tenant_id', true) AND device_id = %(target_device_id)s
"""
TARGET_GROUP = """
SELECT m.device_id FROM device_group_members m
WHERE m.tenant_id = current_setting('jobs.tenant_id', true) AND m.group_id = %(target_group_id)s
"""
TARGET_ALL = """
SELECT device_id FROM device_state WHERE tenant_id = current_setting('jobs.tenant_id', true)
"""

# One set-based statement, whatever the fleet size: the job row only if it has targets, then
# one execution per target (the triggers tally them into the job's count rows). A job held back
# (scheduled to start later, or paced) gets its executions UNRELEASED, but for the first minute's
# worth of a paced job that starts now, released at once in queue order (by device id); the
# schedule releases the rest (rollouts.py). expires_in_hours counts from the start.
CREATE = """
WITH targets AS ({targets}),
plan AS (
    SELECT CASE WHEN %(start_time)s::timestamptz > now() THEN {scheduled} ELSE {running} END AS status,
           greatest(now(), %(start_time)s::timestamptz) AS start_at,
           (SELECT count(*) FROM targets) AS total
), first_release AS (
    SELECT p.*, CASE WHEN p.status = {scheduled} THEN 0 ELSE least(p.total, %(rate)s) END AS n
    FROM plan p
), job AS (
    INSERT INTO jobs (tenant_id, job_id, document_type, document_params,
                      target_device_id, target_group_id, target_all, expires_at, created_by,
                      timeout_minutes, retry, retries_failed, retries_timed_out, retries_shared,
                      status, scheduling, rollout, abort, start_time, end_time, end_behavior, description,
                      rate_per_minute,
                      released, released_until, next_release_at, next_tick_at)
    SELECT current_setting('jobs.tenant_id', true), %(job_id)s, %(document_type)s, %(document_params)s,
           %(target_device_id)s, %(target_group_id)s, %(target_all)s,
           f.start_at + make_interval(hours => %(expires_in_hours)s::integer), %(created_by)s,
           %(timeout_minutes)s, %(retry)s, %(retries_failed)s, %(retries_timed_out)s, %(retries_shared)s,
           f.status, %(scheduling)s, %(rollout)s, %(abort)s, %(start_time)s, %(end_time)s, %(end_behavior)s,
           %(description)s,
           %(rate)s,
           CASE WHEN %(held)s THEN f.n END,
           r.released_until,
           CASE WHEN f.status = {scheduled} THEN %(start_time)s
                WHEN f.n < f.total THEN r.released_until + make_interval(secs => 60.0 / %(rate)s) END,
           CASE WHEN f.status = {scheduled} THEN %(start_time)s
                WHEN f.n < f.total THEN least(r.released_until + make_interval(secs => 60.0 / %(rate)s),
                                              %(end_time)s)
                ELSE %(end_time)s END
    FROM first_release f
    CROSS JOIN LATERAL (
        -- the rate's credit: a full minute's, less what was released now
        SELECT CASE WHEN f.status <> {scheduled} AND %(rate)s IS NOT NULL
                    THEN now() - interval '1 minute' + make_interval(secs => f.n * 60.0 / %(rate)s) END
               AS released_until
    ) r
    WHERE f.total > 0
    RETURNING tenant_id, job_id, status, expires_at
), executions AS (
    INSERT INTO job_executions (tenant_id, job_id, device_id, sweep_at, status)
    SELECT job.tenant_id, job.job_id, t.device_id, job.expires_at, {status}
    FROM job, {ordered_targets}
    RETURNING 1
)
SELECT job.job_id, job.status, job.expires_at, (SELECT count(*) FROM executions) AS execution_count
FROM job
"""
ALL_RELEASED = {"status": f"'{ExecutionStatus.QUEUED}'", "ordered_targets": "targets t"}
HELD_BACK = {
    "status": f"CASE WHEN t.n <= (SELECT n FROM first_release) THEN '{ExecutionStatus.QUEUED}'"
    f" ELSE '{ExecutionStatus.UNRELEASED}' END",
    "ordered_targets": "(SELECT device_id, row_number() OVER (ORDER BY device_id) AS n FROM targets) t",
}
JOB_STATUSES = {"scheduled": f"'{JobStatus.SCHEDULED}'", "running": f"'{JobStatus.IN_PROGRESS}'"}

# Counts come from the job's count rows (at most 16), never from its executions.
SUMMARY_COLUMNS = """
    j.job_id, j.document_type, j.document_params, j.status, j.target_device_id, j.target_group_id,
    j.target_all, j.expires_at, j.created_by, j.created_at, j.timeout_minutes, j.retry,
    j.scheduling, j.rollout, j.abort, j.description, j.updated_at,
    n.unreleased + n.queued + n.in_progress + n.succeeded + n.failed + n.rejected + n.timed_out + n.canceled
        AS total_executions,
    n.succeeded AS succeeded_count,
    n.failed + n.timed_out + n.rejected + n.canceled AS failed_count,
    n.unreleased, n.queued, n.in_progress, n.succeeded, n.failed, n.rejected, n.timed_out, n.canceled,
    j.released, j.rate_per_minute, j.next_release_at, j.stop_reason, j.stopped_at
"""
COUNTS = """
LEFT JOIN LATERAL (
    SELECT coalesce(sum(c.unreleased), 0)::int AS unreleased,
           coalesce(sum(c.queued), 0)::int AS queued, coalesce(sum(c.in_progress), 0)::int AS in_progress,
           coalesce(sum(c.succeeded), 0)::int AS succeeded, coalesce(sum(c.failed), 0)::int AS failed,
           coalesce(sum(c.rejected), 0)::int AS rejected, coalesce(sum(c.timed_out), 0)::int AS timed_out,
           coalesce(sum(c.canceled), 0)::int AS canceled
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
GROUP_FILTER = "AND j.target_group_id = %(group)s"
AFTER_FILTER = "AND (j.created_at, j.job_id) < (%(after_created_at)s, %(after_job_id)s)"


@cache
def _list_query(by_status: bool, after: bool, by_group: bool = False) -> sql.Composed:
    """One statement per combination of filters: each has a plan that uses its index."""
    filters = [STATUS_FILTER] * by_status + [AFTER_FILTER] * after + [GROUP_FILTER] * by_group
    return sql.SQL(LIST).format(
        summary=sql.SQL(SUMMARY_COLUMNS), filters=sql.SQL(" ".join(filters)), counts=sql.SQL(COUNTS)
    )


DETAIL = f"""
SELECT {SUMMARY_COLUMNS}, j.tenant_id
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

# Cancel, as the state machine's table has it for the operator: QUEUED executions become
# REJECTED, with force IN_PROGRESS ones CANCELED too, then the job CANCELED, only while it is
# IN_PROGRESS. Executions are locked before the job row, the order every device update takes
# them in.
CANCELABLE = job_sources(JobStatus.CANCELED, Actor.OPERATOR)
STOPPABLE = sources(ExecutionStatus.CANCELED, Actor.OPERATOR)  # what force=true also ends
REJECT_QUEUED = sql.SQL("""
UPDATE job_executions e
SET status = {rejected}, status_details = %(details)s,
    execution_number = e.execution_number + 1, last_updated_at = now()
WHERE e.tenant_id = current_setting('jobs.tenant_id', true) AND e.job_id = %(job_id)s
  AND e.status IN ({rejectable})
  AND EXISTS (SELECT 1 FROM jobs j
              WHERE j.tenant_id = e.tenant_id AND j.job_id = e.job_id AND j.status IN ({cancelable}))
""").format(
    rejected=sql.Literal(str(ExecutionStatus.REJECTED)),
    rejectable=sql_list(sources(ExecutionStatus.REJECTED, Actor.OPERATOR)),
    cancelable=sql_list(CANCELABLE),
)
CANCEL_RUNNING = sql.SQL("""
UPDATE job_executions e
SET status = {canceled}, status_details = %(details)s, execution_number = e.execution_number + 1,
    last_updated_at = now(), timeout_at = NULL, sweep_at = NULL
WHERE e.tenant_id = current_setting('jobs.tenant_id', true) AND e.job_id = %(job_id)s
  AND e.status IN ({stoppable}) AND %(force)s
  AND EXISTS (SELECT 1 FROM jobs j
              WHERE j.tenant_id = e.tenant_id AND j.job_id = e.job_id AND j.status IN ({cancelable}))
""").format(
    canceled=sql.Literal(str(ExecutionStatus.CANCELED)), stoppable=sql_list(STOPPABLE), cancelable=sql_list(CANCELABLE)
)
# One device's execution: a QUEUED one REJECTED, with force a running one CANCELED, whatever the job's
# status (a soft-canceled job's running executions may be stopped one by one); then the job
# completes if that was its last active execution.
CANCEL_EXECUTION = """
UPDATE job_executions e
SET status = CASE WHEN e.status = ANY(%(rejectable)s) THEN %(rejected)s ELSE %(canceled)s END,
    status_details = %(details)s, execution_number = e.execution_number + 1, last_updated_at = now(),
    timeout_at = NULL, sweep_at = NULL
WHERE e.tenant_id = current_setting('jobs.tenant_id', true) AND e.job_id = %(job_id)s
  AND e.device_id = %(device_id)s
  AND e.status = ANY(%(sources)s)
  AND (%(expected)s::bigint IS NULL OR e.execution_number = %(expected)s::bigint)
RETURNING e.job_id
"""
COMPLETE_JOB = "SELECT complete_finished_jobs(ARRAY[%(tenant_id)s], ARRAY[%(job_id)s])"

CANCEL = sql.SQL("""
UPDATE jobs
SET status = {canceled}, updated_at = now(), stop_action = %(stop_action)s, stop_reason = %(stop_reason)s,
    stopped_at = now(),
    reason_code = %(reason_code)s, comment = %(comment)s,
    next_tick_at = NULL, next_release_at = NULL  -- nothing left for the schedule: its executions ended here
WHERE tenant_id = current_setting('jobs.tenant_id', true) AND job_id = %(job_id)s AND status IN ({cancelable})
RETURNING job_id, status
""").format(canceled=sql.Literal(str(JobStatus.CANCELED)), cancelable=sql_list(CANCELABLE))
STATUS = """
SELECT status FROM jobs WHERE tenant_id = current_setting('jobs.tenant_id', true) AND job_id = %(job_id)s
"""


def create(db: Database, tenant_id: str, user: str | None, request: JobCreate) -> JobCreated:
    if request.target_device_id is not None:
        targets = TARGET_DEVICE
    elif request.target_group_id is not None:
        targets = TARGET_GROUP
    else:
        targets = TARGET_ALL
    retries_failed, retries_timed_out, retries_shared = retry_budget(request)
    params = request.model_dump(exclude={"job_id", "document_params", "retry", "scheduling", "rollout", "abort"}) | {
        "retry": Jsonb([criterion.model_dump() for criterion in request.retry]) if request.retry else None,
        "retries_failed": retries_failed,
        "retries_timed_out": retries_timed_out,
        "retries_shared": retries_shared,
        "job_id": request.job_id or str(uuid.uuid4()),
        "document_params": Jsonb(request.document_params),
        "created_by": user,
        **_rollout_params(request),
    }
    statement = CREATE.format(targets=targets, **JOB_STATUSES, **(HELD_BACK if params["held"] else ALL_RELEASED))
    try:
        with db.transaction(tenant_id=tenant_id) as conn:
            result = conn.execute(statement, params)
    except psycopg.errors.UniqueViolation:
        raise Conflict(f"job {params['job_id']} already exists") from None
    row = result.fetchone()
    if row is not None:
        metrics.add_metric(name="JobsCreated", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="ExecutionsQueued", unit=MetricUnit.Count, value=row["execution_count"])
        return JobCreated(**row)
    if request.target_device_id is not None:
        raise NotFound(f"device {request.target_device_id} not found")
    if request.target_group_id is not None:
        raise InvalidRequest(f"group {request.target_group_id} has no members")
    raise InvalidRequest("the tenant has no devices")


def _rollout_params(request: JobCreate) -> dict[str, Any]:
    """The scheduling, rollout and abort settings as the jobs row keeps them; the rollout's rule is
    read from its setting (rollouts.Rule), here for the rate in force at the start."""
    scheduling = request.scheduling
    rollout = request.rollout.model_dump(mode="json", exclude_none=True) if request.rollout else None
    return {
        "scheduling": Jsonb(scheduling.model_dump(mode="json")) if scheduling else None,
        "rollout": Jsonb(rollout) if rollout else None,
        "abort": Jsonb([criterion.model_dump() for criterion in request.abort]) if request.abort else None,
        "start_time": scheduling.start_time if scheduling else None,
        "end_time": scheduling.end_time if scheduling else None,
        "end_behavior": scheduling.end_behavior if scheduling else None,
        "rate": Rule.of(rollout).rate(0),
        "held": rollout is not None or (scheduling is not None and scheduling.start_time is not None),
    }


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


def encode_cursor(position: str) -> str:
    return base64.urlsafe_b64encode(position.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str:
    if not cursor:
        return ""
    try:
        after = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidRequest("invalid cursor") from None
    if "\x00" in after:
        raise InvalidRequest("invalid cursor")
    return after


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
    return JobDetail(**_summary(row), executions=executions, next_cursor=next_cursor)


def retry_budget(request: JobCreate) -> tuple[int, int, bool]:
    """What the retry criteria allow: (retries of a FAILED attempt, of a TIMED_OUT one, whether
    the two draw on one budget). A criterion for a failure type governs it; ALL governs the types
    without one of their own; ALL alone is one budget for both."""
    given = {criterion.failure_type: criterion.number_of_retries for criterion in request.retry or []}
    if set(given) == {"ALL"}:
        return given["ALL"], given["ALL"], True
    fallback = given.get("ALL", 0)
    return given.get("FAILED", fallback), given.get("TIMED_OUT", fallback), False


def cancel(
    db: Database,
    tenant_id: str,
    job_id: str,
    reason: str | None,
    force: bool = False,
    reason_code: str | None = None,
    comment: str | None = None,
) -> JobCanceled:
    """Cancel a job (SCHEDULED or IN_PROGRESS): its QUEUED and UNRELEASED executions REJECTED, with
    force its IN_PROGRESS ones CANCELED. reason_code and comment are AWS's CancelJob members."""
    reason = reason or DEFAULT_CANCEL_REASON
    params = {
        "job_id": job_id,
        "details": Jsonb({"reason": reason}),
        "force": force,
        "stop_action": "FORCE_CANCEL" if force else "CANCEL",  # how it stopped (its executions ended here)
        "stop_reason": f"canceled{' with force' if force else ''}: {reason}",
        "reason_code": reason_code,
        "comment": comment,
    }
    with db.transaction(tenant_id=tenant_id) as conn:
        conn.execute(REJECT_QUEUED, params)
        conn.execute(CANCEL_RUNNING, params)
        canceled = conn.execute(CANCEL, params)
        current = conn.execute(STATUS, params)
    row = canceled.fetchone()
    if row is not None:
        return JobCanceled(**row)
    found = current.fetchone()
    if found is None:
        raise NotFound(f"job {job_id} not found")
    raise InvalidRequest(f"only an {' or '.join(CANCELABLE)} job can be canceled; this one is {found['status']}")


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


def cancel_execution(
    db: Database,
    tenant_id: str,
    job_id: str,
    device_id: str,
    request: ExecutionCancel,
    force: bool,
    details: dict[str, Any] | None = None,
) -> ExecutionDetail:
    """A QUEUED execution REJECTED, with force a running one CANCELED (status_details {"reason"},
    or `details` as given)."""
    reject = sources(ExecutionStatus.REJECTED, Actor.OPERATOR)
    params = {
        "tenant_id": tenant_id,
        "job_id": job_id,
        "device_id": device_id,
        "details": Jsonb(details if details is not None else {"reason": request.reason or DEFAULT_CANCEL_REASON}),
        "rejectable": reject,
        "rejected": str(ExecutionStatus.REJECTED),
        "canceled": str(ExecutionStatus.CANCELED),
        "sources": reject + (STOPPABLE if force else []),
        "expected": request.execution_number,
    }
    with db.transaction(tenant_id=tenant_id) as conn:
        changed = conn.execute(CANCEL_EXECUTION, params)
        conn.execute(COMPLETE_JOB, params)
        found = conn.execute(EXECUTION, params)
    row = found.fetchone()
    if row is None:
        raise NotFound(f"no execution of job {job_id} for device {device_id}")
    if changed.fetchone() is None:
        status = ExecutionStatus(row["status"])
        if request.execution_number is not None and request.execution_number != row["execution_number"]:
            raise Conflict(f"execution_number {request.execution_number} is stale: it is at {row['execution_number']}")
        if str(status) in STOPPABLE:
            raise InvalidRequest(f"the execution is {status}: cancel it with force=true to end it while it runs")
        raise InvalidRequest(f"the execution is {status}: only a QUEUED (or, with force, IN_PROGRESS) one can be")
    return execution(db, tenant_id, job_id, device_id)


# Delete a job that is over (or, with force, any): its executions first, the lock order of every
# writer, then the job row (its count rows and attempts go with it).
DELETABLE = [str(JobStatus.COMPLETED), str(JobStatus.CANCELED)]
DELETE_EXECUTIONS = """
DELETE FROM job_executions e
WHERE e.tenant_id = current_setting('jobs.tenant_id', true) AND e.job_id = %(job_id)s
  AND EXISTS (SELECT 1 FROM jobs j WHERE j.tenant_id = e.tenant_id AND j.job_id = e.job_id
              AND (j.status = ANY(%(deletable)s) OR %(force)s))
"""
DELETE_JOB = """
DELETE FROM jobs
WHERE tenant_id = current_setting('jobs.tenant_id', true) AND job_id = %(job_id)s
  AND (status = ANY(%(deletable)s) OR %(force)s)
RETURNING job_id
"""


def delete(db: Database, tenant_id: str, job_id: str, force: bool = False) -> None:
    """Delete a COMPLETED or CANCELED job with its executions; with force, one still running too
    (its devices' next calls find nothing: 404)."""
    params = {"job_id": job_id, "deletable": DELETABLE, "force": force}
    with db.transaction(tenant_id=tenant_id) as conn:
        conn.execute(DELETE_EXECUTIONS, params)
        deleted = conn.execute(DELETE_JOB, params)
        current = conn.execute(STATUS, params)
    if deleted.fetchone() is not None:
        metrics.add_metric(name="JobsDeleted", unit=MetricUnit.Count, value=1)
        return
    found = current.fetchone()
    if found is None:
        raise NotFound(f"job {job_id} not found")
    raise Refused(f"the job is {found['status']}: delete it with force=true, or when it is over")
