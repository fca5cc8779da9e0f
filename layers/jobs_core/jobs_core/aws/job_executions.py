"""AWS IoT Jobs' control plane, the operations on job executions (CancelJobExecution,
DescribeJobExecution, ListJobExecutionsForJob, ListJobExecutionsForThing), over the native
operator logic, in the operator's tenant. An execution not released yet does not exist for AWS.
"""

from __future__ import annotations

from typing import Any

from jobs_core.aws.jobs import aws_errors
from jobs_core.aws.shapes import (
    AwsError,
    CancelJobExecutionRequest,
    ControlExecutionSummary,
    ControlJobExecution,
    DescribeJobExecutionResponse,
    JobExecutionSummaryForJob,
    JobExecutionSummaryForThing,
    ListJobExecutionsForJobResponse,
    ListJobExecutionsForThingResponse,
    arn,
    details_map,
    epoch,
)
from jobs_core.domain import jobs_cancel, jobs_read, paging
from jobs_core.domain.models import ExecutionCancel
from jobs_core.domain.statemachine import ExecutionStatus
from jobs_core.store.db import Database

UNRELEASED = str(ExecutionStatus.UNRELEASED)


def cancel_execution(
    db: Database, tenant_id: str, job_id: str, thing: str, force: bool, request: CancelJobExecutionRequest
) -> None:
    """A QUEUED execution REJECTED, with force an IN_PROGRESS one CANCELED; statusDetails as given."""
    _released(db, tenant_id, job_id, thing)
    cancel = ExecutionCancel(execution_number=request.expectedVersion or None)
    with aws_errors(
        NotFound="ResourceNotFoundException",
        Conflict="VersionConflictException",
        InvalidRequest="InvalidStateTransitionException",
    ):
        jobs_cancel.cancel_execution(db, tenant_id, job_id, thing, cancel, force, details=request.statusDetails)


def _released(db: Database, tenant_id: str, job_id: str, thing: str) -> dict[str, Any]:
    """The execution, as AWS would have it: one not released yet does not exist."""
    with aws_errors(NotFound="ResourceNotFoundException"):
        found = jobs_read.execution(db, tenant_id, job_id, thing)
    if found.status is ExecutionStatus.UNRELEASED:
        raise AwsError("ResourceNotFoundException", f"no execution of job {job_id} for thing {thing}")
    return found.model_dump()


def describe_execution(
    db: Database, tenant_id: str, job_id: str, thing: str, execution_number: int | None
) -> DescribeJobExecutionResponse:
    e = _released(db, tenant_id, job_id, thing)
    if execution_number is not None and execution_number != e["attempt"]:
        ended = next((a for a in e["attempts"] if a["attempt"] == execution_number), None)
        if ended is None:
            raise AwsError("ResourceNotFoundException", f"no attempt {execution_number} of job {job_id} for {thing}")
        return DescribeJobExecutionResponse(
            execution=ControlJobExecution(
                jobId=job_id,
                status=str(ended["status"]),
                statusDetails={"detailsMap": details_map(ended["status_details"]) or {}},
                thingArn=arn("thing", thing),
                startedAt=epoch(ended["started_at"]),
                lastUpdatedAt=epoch(ended["finished_at"]),
                executionNumber=execution_number,
            )
        )
    return DescribeJobExecutionResponse(
        execution=ControlJobExecution(
            jobId=job_id,
            status=str(e["status"]),
            forceCanceled=e["status"] is ExecutionStatus.CANCELED or None,
            statusDetails={"detailsMap": details_map(e["status_details"]) or {}},
            thingArn=arn("thing", thing),
            queuedAt=epoch(e["queued_at"]),
            startedAt=epoch(e["started_at"]),
            lastUpdatedAt=epoch(e["last_updated_at"]),
            executionNumber=e["attempt"],
            versionNumber=e["execution_number"],
            approximateSecondsBeforeTimedOut=e["approximate_seconds_before_timed_out"],
        )
    )


def _summary(row: dict[str, Any]) -> ControlExecutionSummary:
    return ControlExecutionSummary(
        status=row["status"],
        queuedAt=epoch(row["queued_at"]),
        startedAt=epoch(row["started_at"]),
        lastUpdatedAt=epoch(row["last_updated_at"]),
        executionNumber=row["attempt"],
        retryAttempt=row["attempt"] - 1,
    )


EXECUTION_COLUMNS = "job_id, device_id, status, attempt, queued_at, started_at, last_updated_at"
# A page of a job's executions by device id, and of a device's by job id (job_executions_by_device),
# never what was not released.
FOR_JOB = f"""
SELECT {EXECUTION_COLUMNS} FROM job_executions
WHERE tenant_id = current_setting('jobs.tenant_id', true) AND job_id = %(job_id)s AND device_id > %(after)s
  AND status <> %(unreleased)s AND (%(status)s::text IS NULL OR status = %(status)s::text)
ORDER BY device_id
LIMIT %(limit)s
"""
FOR_THING = f"""
SELECT {EXECUTION_COLUMNS} FROM job_executions
WHERE tenant_id = current_setting('jobs.tenant_id', true) AND device_id = %(thing)s AND job_id > %(after)s
  AND status <> %(unreleased)s AND (%(status)s::text IS NULL OR status = %(status)s::text)
  AND (%(job_id)s::text IS NULL OR job_id = %(job_id)s::text)
ORDER BY job_id
LIMIT %(limit)s
"""
JOB_EXISTS = "SELECT 1 FROM jobs WHERE tenant_id = current_setting('jobs.tenant_id', true) AND job_id = %(job_id)s"
THING_EXISTS = """
SELECT 1 FROM device_state WHERE tenant_id = current_setting('jobs.tenant_id', true) AND device_id = %(thing)s
"""


def _page(
    db: Database,
    tenant_id: str,
    query: str,
    exists: str,
    params: dict[str, Any],
    by: str,
    max_results: int | None,
    next_token: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of executions ordered by `by`, and the token of the next; 404 when what they are of
    (exists) is not the tenant's."""
    limit = max_results or 50
    with aws_errors():
        after = paging.decode_cursor(next_token)
    with db.transaction(tenant_id=tenant_id) as conn:
        page = conn.execute(query, {**params, "after": after, "limit": limit + 1, "unreleased": UNRELEASED})
        found = conn.execute(exists, params)
    if found.fetchone() is None:
        raise AwsError("ResourceNotFoundException", "not found: " + ", ".join(f"{v}" for v in params.values() if v))
    rows = page.fetchall()
    return rows[:limit], paging.encode_cursor(rows[limit - 1][by]) if len(rows) > limit else None


def list_executions_for_job(
    db: Database, tenant_id: str, job_id: str, status: str | None, max_results: int | None, next_token: str | None
) -> ListJobExecutionsForJobResponse:
    params = {"job_id": job_id, "status": status}
    rows, token = _page(db, tenant_id, FOR_JOB, JOB_EXISTS, params, "device_id", max_results, next_token)
    return ListJobExecutionsForJobResponse(
        executionSummaries=[
            JobExecutionSummaryForJob(thingArn=arn("thing", r["device_id"]), jobExecutionSummary=_summary(r))
            for r in rows
        ],
        nextToken=token,
    )


def list_executions_for_thing(
    db: Database,
    tenant_id: str,
    thing: str,
    status: str | None,
    job_id: str | None,
    max_results: int | None,
    next_token: str | None,
) -> ListJobExecutionsForThingResponse:
    params = {"thing": thing, "status": status, "job_id": job_id}
    rows, token = _page(db, tenant_id, FOR_THING, THING_EXISTS, params, "job_id", max_results, next_token)
    return ListJobExecutionsForThingResponse(
        executionSummaries=[
            JobExecutionSummaryForThing(jobId=r["job_id"], jobExecutionSummary=_summary(r)) for r in rows
        ],
        nextToken=token,
    )
