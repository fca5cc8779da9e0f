"""AWS IoT Jobs' data plane (boto3 `iot-jobs-data`) over the same state machine and SQL as the
native device API: each call is one statement (sql/aws_calls.sql, built on device_calls.sql), one
round trip. The provision token authenticates the device; the thing named in the path must be it.

Mapping: thingName is the device id; versionNumber is our execution_number, executionNumber our
attempt; statusDetails is a string map (our JSON values other than strings are sent as their JSON
text); jobDocument is the job's document as JSON text (aws_jobs.document_text). Errors are AWS's
codes: an unknown token is CertificateValidationException (the provision token is what a device
certificate is to AWS), another device's thing or an unknown job ResourceNotFoundException, a
change from a terminal status TerminalStateException, any other refused change (a stale
expectedVersion among them) InvalidStateTransitionException.
"""

from __future__ import annotations

import json
from typing import Any

from psycopg.types.json import Jsonb

from jobs_core.aws.shapes import (
    AwsError,
    ExecutionResponse,
    GetPendingJobExecutionsResponse,
    JobExecution,
    JobExecutionState,
    JobExecutionSummary,
    StartNextPendingJobExecutionRequest,
    UpdateJobExecutionRequest,
    details_map,
    epoch_s,
)
from jobs_core.domain import credentials, notifications, presign
from jobs_core.domain.executions import CLAIMED, refusal
from jobs_core.domain.statemachine import (
    DEVICE_TARGETS,
    TERMINAL,
    Actor,
    ExecutionStatus,
    claim_sources,
    retry_sources,
    retry_target,
    sources,
)
from jobs_core.errors import Conflict, Ended, NotFound, Refused, Unauthorized
from jobs_core.store.db import Database

PENDING_LIMIT = 10  # of each list, oldest first: the native pending call's limit

PENDING = "SELECT * FROM aws_pending(%(key)s, %(thing)s, %(limit)s)"
DESCRIBE = "SELECT * FROM aws_execution(%(key)s, %(thing)s, %(job_id)s, %(attempt)s)"
START_NEXT = (
    "SELECT * FROM aws_start_next(%(key)s, %(thing)s, %(claimed)s, %(claim_sources)s, %(status_details)s,"
    " %(step_timeout_minutes)s)"
)
UPDATE = (
    "SELECT * FROM aws_update(%(key)s, %(thing)s, %(attempt)s, %(job_id)s, %(status)s, %(sources)s,"
    " %(claim_sources)s, %(retry_sources)s, %(requeued)s, %(expected)s, %(status_details)s, %(terminal)s,"
    " %(step_timeout_minutes)s, %(include_state)s)"
)
NEXT = "$next"


def _scoped(row: dict[str, Any] | None, thing: str) -> dict[str, Any]:
    """The row of a call for the thing named: an unknown token, or a thing that is not the token's
    device, changed and read nothing."""
    try:
        found = credentials.authenticated(row)
    except Unauthorized:
        raise AwsError("CertificateValidationException", "missing or unknown provision token") from None
    if not found["thing_ok"]:
        raise AwsError("ResourceNotFoundException", f"thing {thing} is not this device")
    return found


def summary(row: dict[str, Any]) -> JobExecutionSummary:
    return JobExecutionSummary(
        jobId=row["job_id"],
        queuedAt=epoch_s(row["queued_at"]) or 0,
        startedAt=epoch_s(row["started_at"]),
        lastUpdatedAt=epoch_s(row["last_updated_at"]) or 0,
        versionNumber=row["execution_number"],
        executionNumber=row["attempt"],
    )


def document_text(document_type: str, params: dict[str, Any]) -> str:
    """A job's document as AWS's jobDocument: its params as JSON text, with its type as
    "operation" unless the params name one (a document created through the AWS API is stored as
    it was given, so it comes back as it was given)."""
    return json.dumps(params if "operation" in params else {"operation": document_type, **params})


def execution(row: dict[str, Any], thing: str, include_document: bool = True) -> JobExecution:
    """Our execution JSON (execution_json) as the data plane's JobExecution."""
    document = row["document"]
    return JobExecution(
        jobId=row["job_id"],
        thingName=thing,
        status=row["status"],
        statusDetails=details_map(row["status_details"]),
        queuedAt=epoch_s(row["queued_at"]),
        startedAt=epoch_s(row["started_at"]),
        lastUpdatedAt=epoch_s(row["last_updated_at"]),
        approximateSecondsBeforeTimedOut=row["approximate_seconds_before_timed_out"],
        versionNumber=row["execution_number"],
        executionNumber=row["attempt"],
        jobDocument=document_text(document["type"], presign.device_params(document)) if include_document else None,
    )


def get_pending(db: Database, token: str | None, thing: str) -> GetPendingJobExecutionsResponse:
    row = _scoped(
        db.fetch_one(PENDING, {"key": credentials.lookup_key(token), "thing": thing, "limit": PENDING_LIMIT}), thing
    )
    return GetPendingJobExecutionsResponse(
        inProgressJobs=[summary(e) for e in row["in_progress"]], queuedJobs=[summary(e) for e in row["queued"]]
    )


def describe(
    db: Database, token: str | None, thing: str, job_id: str, include_document: bool, attempt: int | None
) -> ExecutionResponse:
    params = {"key": credentials.lookup_key(token), "thing": thing, "job_id": None if job_id == NEXT else job_id}
    row = _scoped(db.fetch_one(DESCRIBE, {**params, "attempt": attempt}), thing)
    if row["execution"] is None:
        if job_id == NEXT:
            return ExecutionResponse(execution=None)
        raise AwsError("ResourceNotFoundException", f"no execution of job {job_id} for thing {thing}")
    return ExecutionResponse(execution=execution(row["execution"], thing, include_document))


def start_next(
    db: Database, token: str | None, thing: str, request: StartNextPendingJobExecutionRequest
) -> ExecutionResponse:
    params = {
        "key": credentials.lookup_key(token),
        "thing": thing,
        "claimed": str(CLAIMED),
        "claim_sources": claim_sources(CLAIMED, Actor.DEVICE),
        "status_details": Jsonb(request.statusDetails) if request.statusDetails is not None else None,
        "step_timeout_minutes": request.stepTimeoutInMinutes,
    }
    row = _scoped(db.fetch_one(START_NEXT, params), thing)
    if row["execution"] is None:
        return ExecutionResponse(execution=None)
    if row["claimed"]:
        notifications.wake()
    return ExecutionResponse(execution=execution(row["execution"], thing))


def update(
    db: Database, token: str | None, thing: str, job_id: str, request: UpdateJobExecutionRequest
) -> dict[str, Any]:
    """UpdateJobExecution; the answer's members as the request asked for them."""
    # A status a device may not set (QUEUED, TIMED_OUT, CANCELED; AWS's REMOVED, which is not ours)
    # moves nothing (no sources), but is refused only after the caller is known.
    target = ExecutionStatus(request.status) if request.status in ExecutionStatus.__members__ else None
    settable = target is not None and target in DEVICE_TARGETS
    claims = claim_sources(target, Actor.DEVICE) if target is not None else []
    params = {
        "key": credentials.lookup_key(token),
        "thing": thing,
        "attempt": request.executionNumber,
        "job_id": job_id,
        "status": request.status,
        "sources": sources(target, Actor.DEVICE) if settable and target is not None else [],
        "claim_sources": claims,
        "retry_sources": retry_sources(target, Actor.DEVICE) if target is not None else [],
        "requeued": retry_target(target, Actor.DEVICE) if target is not None else None,
        "expected": request.expectedVersion,
        "status_details": Jsonb(request.statusDetails) if request.statusDetails is not None else None,
        "terminal": target is not None and target in TERMINAL,
        "step_timeout_minutes": request.stepTimeoutInMinutes,
        "include_state": request.includeJobExecutionState or request.includeJobDocument,
    }
    row = _scoped(db.fetch_one(UPDATE, params), thing)
    if row["execution"] is None:
        if row["found_status"] is not None and (target is None or not settable):
            raise AwsError("InvalidStateTransitionException", f"a device cannot set an execution to {request.status}")
        assert target is not None
        raise _refused(request, target, claims, row, job_id, thing)
    if row["execution"]["status"] != row["found_status"]:  # claimed, finished or queued again
        notifications.wake()
    state = row["state"]
    answer: dict[str, Any] = {}
    if request.includeJobExecutionState and state is not None:
        answer["executionState"] = JobExecutionState(
            status=state["status"],
            statusDetails=details_map(state["status_details"]),
            versionNumber=state["execution_number"],
        )
    if request.includeJobDocument and state is not None:
        answer["jobDocument"] = document_text(state["document"]["type"], presign.device_params(state["document"]))
    return answer


def _refused(
    request: UpdateJobExecutionRequest,
    target: ExecutionStatus,
    claims: list[str],
    row: dict[str, Any],
    job_id: str,
    thing: str,
) -> AwsError:
    attempt = request.executionNumber
    if attempt is not None and row["found_status"] is None and row["found_attempt"] is not None:
        if row["found_attempt"] > attempt:
            return AwsError(
                "TerminalStateException", f"attempt {attempt} ended: the execution is at {row['found_attempt']}"
            )
        return AwsError(
            "ResourceNotFoundException", f"no attempt {attempt}: the execution is at {row['found_attempt']}"
        )
    if row["found_status"] is None:
        return AwsError("ResourceNotFoundException", f"no execution of job {job_id} for thing {thing}")
    why = refusal(target, claims, request.expectedVersion, row)
    if isinstance(why, Ended):
        return AwsError("TerminalStateException", why.message)
    if isinstance(why, Refused | Conflict | NotFound):
        return AwsError("InvalidStateTransitionException", why.message)
    return AwsError("InvalidStateTransitionException", str(why))
