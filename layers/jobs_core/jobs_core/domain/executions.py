"""What a device does with its job executions: list pending, read one, start the next one, claim /
progress / finish (a FAILED attempt with a retry left is QUEUED again as the next attempt).

Each call is one statement, one round trip: a SQL function (sql/device_calls.sql)
that authenticates the token, scopes the transaction to the device, then decides and acts. A
refusal is explained from what that same statement saw, after the fact, without another query.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from psycopg.types.json import Jsonb

from jobs_core.domain import credentials, notifications, presign
from jobs_core.domain.models import (
    Document,
    Execution,
    ExecutionUpdate,
    ExecutionUpdated,
    NextExecution,
    PendingJob,
    PendingJobs,
    StartNext,
)
from jobs_core.domain.statemachine import (
    TERMINAL,
    Actor,
    ExecutionStatus,
    allowed,
    claim_sources,
    retry_sources,
    retry_target,
    sources,
)
from jobs_core.errors import Conflict, Ended, NotFound, Refused
from jobs_core.observability import metrics
from jobs_core.store.db import Database

PENDING_LIMIT = 10

# The device calls are SQL functions (sql/device_calls.sql): one statement each.
PENDING = "SELECT * FROM device_pending(%(key)s, %(limit)s)"
DESCRIBE = "SELECT * FROM device_execution(%(key)s, %(job_id)s)"
START_NEXT = (
    "SELECT * FROM device_start_next(%(key)s, %(claimed)s, %(claim_sources)s, %(status_details)s,"
    " %(step_timeout_minutes)s)"
)
UPDATE = (
    "SELECT * FROM device_update(%(key)s, %(job_id)s, %(status)s, %(sources)s, %(claim_sources)s,"
    " %(retry_sources)s, %(requeued)s, %(expected)s, %(status_details)s, %(terminal)s, %(step_timeout_minutes)s)"
)
# A claim, as the table has it: what start-next moves an execution to.
CLAIMED = ExecutionStatus.IN_PROGRESS


def _document(row: dict[str, Any]) -> Document:
    params = {"params": row["document_params"], "presign_ttl": row.get("presign_ttl")}
    return Document(type=row["document_type"], params=presign.device_params(params))


def _execution(found: dict[str, Any]) -> Execution:
    """An execution as execution_json has it, its document as the device reads it (fresh presigned URLs)."""
    found["document"]["params"] = presign.device_params(found["document"])
    return Execution.model_validate(found)


def pending(db: Database, token: str | None) -> PendingJobs:
    row = credentials.authenticated(
        db.fetch_one(PENDING, {"key": credentials.lookup_key(token), "limit": PENDING_LIMIT})
    )
    return PendingJobs(
        next_poll_in_seconds=notifications.poll_hint_s(),
        jobs=[
            PendingJob(
                job_id=job["job_id"],
                execution_number=job["execution_number"],
                attempt=job["attempt"],
                document=_document(job),
                queued_at=job["queued_at"],
                expires_at=job["expires_at"],
            )
            for job in row["pending"]
        ],
    )


def describe(db: Database, token: str | None, job_id: str) -> Execution:
    row = credentials.authenticated(db.fetch_one(DESCRIBE, {"key": credentials.lookup_key(token), "job_id": job_id}))
    if row["execution"] is None:
        raise NotFound("job execution not found")
    return _execution(row["execution"])


def start_next(db: Database, token: str | None, request: StartNext) -> NextExecution:
    """The device's IN_PROGRESS execution, else its oldest claimable QUEUED one, claimed."""
    params = {
        "key": credentials.lookup_key(token),
        "claimed": str(CLAIMED),
        "claim_sources": claim_sources(CLAIMED, Actor.DEVICE),
        "status_details": Jsonb(request.status_details) if request.status_details is not None else None,
        "step_timeout_minutes": request.step_timeout_minutes,
    }
    row = credentials.authenticated(db.fetch_one(START_NEXT, params))
    if row["execution"] is None:
        return NextExecution(execution=None, claimed=False, next_poll_in_seconds=notifications.poll_hint_s())
    if row["claimed"]:
        notifications.wake()  # its queue's head started: the next one shows in its lists
    return NextExecution(execution=_execution(row["execution"]), claimed=row["claimed"])


def update(db: Database, token: str | None, job_id: str, change: ExecutionUpdate) -> ExecutionUpdated:
    target = ExecutionStatus(change.status)
    claims = claim_sources(target, Actor.DEVICE)
    params = {
        "key": credentials.lookup_key(token),
        "job_id": job_id,
        "status": str(target),
        "sources": sources(target, Actor.DEVICE),
        "claim_sources": claims,
        "retry_sources": retry_sources(target, Actor.DEVICE),
        "requeued": retry_target(target, Actor.DEVICE),
        "expected": change.execution_number,
        "status_details": Jsonb(change.status_details) if change.status_details is not None else None,
        "terminal": target in TERMINAL,
        "step_timeout_minutes": change.step_timeout_minutes,
    }
    row = credentials.authenticated(db.fetch_one(UPDATE, params))
    if row["found_status"] is None:
        raise NotFound("job execution not found")
    if row["execution"] is not None:
        updated = ExecutionUpdated.model_validate(row["execution"])
        if updated.status != row["found_status"]:  # claimed, finished or queued again: not a progress report
            notifications.wake()
        metrics.add_metric(name=f"Executions{target.title().replace('_', '')}", unit=MetricUnit.Count, value=1)
        if updated.status is not target:
            metrics.add_metric(name="ExecutionsRetried", unit=MetricUnit.Count, value=1)
        return updated
    raise refusal(target, claims, change.execution_number, row)


def refusal(target: ExecutionStatus, claims: list[str], expected: int | None, row: dict[str, Any]) -> Exception:
    """Why device_update changed nothing, from what its statement saw."""
    found = ExecutionStatus(row["found_status"])
    if found is ExecutionStatus.CANCELED:
        return Ended("the operator canceled this execution while it ran: it cannot change any more")
    if not allowed(found, target, Actor.DEVICE):
        ended = Ended if found in TERMINAL else Refused
        return ended(f"cannot move an execution from {found} to {target}")
    if found in claims and not row["claimable"]:
        return Refused("the job is canceled, completed or expired: its execution cannot be claimed")
    if expected is not None and expected != row["found_number"]:
        return Conflict(f"execution_number {expected} is stale: the execution is at {row['found_number']}")
    return Conflict("the execution changed concurrently: read it again and retry")
