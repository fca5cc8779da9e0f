"""What an operator does to stop work: cancel a job (soft or with force), cancel one execution,
delete a job that is over.

Every call runs scoped to the operator's tenant (jobs.tenant_id), which row-level security
enforces, in one transaction sent as one round trip.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from psycopg import sql
from psycopg.types.json import Jsonb

from jobs_core.domain import notifications
from jobs_core.domain.jobs_read import EXECUTION, execution
from jobs_core.domain.models import ExecutionCancel, ExecutionDetail, JobCanceled
from jobs_core.domain.statemachine import Actor, ExecutionStatus, JobStatus, job_sources, sources
from jobs_core.errors import Conflict, InvalidRequest, NotFound, Refused
from jobs_core.observability import metrics
from jobs_core.store.db import Database, sql_list

DEFAULT_CANCEL_REASON = "canceled by operator"

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
        notifications.wake()
        return JobCanceled(**row)
    found = current.fetchone()
    if found is None:
        raise NotFound(f"job {job_id} not found")
    raise InvalidRequest(f"only an {' or '.join(CANCELABLE)} job can be canceled; this one is {found['status']}")


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
    notifications.wake()
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
        notifications.wake()
        metrics.add_metric(name="JobsDeleted", unit=MetricUnit.Count, value=1)
        return
    found = current.fetchone()
    if found is None:
        raise NotFound(f"job {job_id} not found")
    raise Refused(f"the job is {found['status']}: delete it with force=true, or when it is over")
