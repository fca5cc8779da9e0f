"""Request and response bodies, shared by the handlers and the OpenAPI document."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer

from jobs_core.domain.statemachine import ExecutionStatus, JobStatus

JOB_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
# Device and group ids follow AWS IoT's rule for thing and thing group names.
DEVICE_ID_PATTERN = r"^[A-Za-z0-9:_-]{1,128}$"
# A tenant id: 1-128 of these, starting with a letter or a digit.
TENANT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$"
MAX_STATUS_DETAILS_BYTES = 4 * 1024
MAX_DOCUMENT_PARAMS_BYTES = 32 * 1024

# ISO 8601 with an explicit offset (+00:00): the connection's time zone is UTC.
Timestamp = Annotated[datetime, PlainSerializer(lambda t: t.isoformat(), return_type=str)]


MAX_JSON_DEPTH = 32


def _check_text(value: str) -> str:
    """Text PostgreSQL can store: no NUL characters, no lone surrogates."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


def _bounded_json(limit: int) -> AfterValidator:
    """At most `limit` bytes of JSON, MAX_JSON_DEPTH levels deep, every string storable."""

    def check(value: dict[str, Any]) -> dict[str, Any]:
        stack: list[tuple[Any, int]] = [(value, 1)]
        while stack:  # iterative: a deep document cannot exhaust the Python stack
            item, depth = stack.pop()
            if depth > MAX_JSON_DEPTH:
                raise ValueError(f"at most {MAX_JSON_DEPTH} levels of nesting")
            if isinstance(item, dict):
                for key, inner in item.items():
                    _check_text(key)
                    stack.append((inner, depth + 1))
            elif isinstance(item, list):
                stack.extend((inner, depth + 1) for inner in item)
            elif isinstance(item, str):
                _check_text(item)
        try:  # NaN and Infinity are not JSON (nor jsonb): refused, not left for the database to fail on
            size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode())
        except ValueError:
            raise ValueError("numbers must be finite") from None
        if size > limit:
            raise ValueError(f"at most {limit} bytes of JSON, got {size}")
        return value

    return AfterValidator(check)


Text = Annotated[str, AfterValidator(_check_text)]
StatusDetails = Annotated[dict[str, Any], _bounded_json(MAX_STATUS_DETAILS_BYTES)]
DocumentParams = Annotated[dict[str, Any], _bounded_json(MAX_DOCUMENT_PARAMS_BYTES)]

DeviceTarget = Literal["IN_PROGRESS", "SUCCEEDED", "FAILED", "REJECTED"]


class Model(BaseModel):
    """Built on first use, not at import: a handler's cold start pays only for the models it uses."""

    model_config = ConfigDict(defer_build=True)


class RequestBody(Model):
    """A request body: the wire types of openapi.json, strictly (a string is not an integer and 1
    is not a boolean), and no field the schema does not name."""

    model_config = ConfigDict(defer_build=True, strict=True, extra="forbid")

    def __repr__(self) -> str:
        """Its name only: Powertools formats every route's arguments into a debug message, at every
        call (1,000 devices of an import: 7 ms), and a client's input has no place in a log line."""
        return f"{type(self).__name__}(...)"


class Document(Model):
    type: str
    params: dict[str, Any]


MAX_TIMEOUT_MINUTES = 10080  # 7 days, as AWS allows
TimeoutMinutes = Annotated[int, Field(ge=1, le=MAX_TIMEOUT_MINUTES)]


class PendingJob(Model):
    job_id: str
    execution_number: int
    attempt: int = Field(description="1, then +1 for each retry (AWS's executionNumber)")
    document: Document
    queued_at: Timestamp
    expires_at: Timestamp | None


NEXT_POLL = Field(
    default=None,
    description="a hint: poll again in about this many seconds when nothing else tells you to (a mean with"
    " +-20% jitter, so a fleet does not poll in step); a device subscribed to its notify-next topic polls far"
    " less often, as a safety net",
)


class PendingJobs(Model):
    jobs: list[PendingJob]
    next_poll_in_seconds: int | None = NEXT_POLL


class Deadline(Model):
    timeout_at: Timestamp | None = Field(
        description="when the execution times out unless it finishes (or a new step timeout moves it); null: never"
    )
    approximate_seconds_before_timed_out: int | None = Field(description="from now to timeout_at, as AWS names it")


class Execution(Deadline):
    job_id: str
    device_id: str
    status: ExecutionStatus
    status_details: dict[str, Any] | None
    execution_number: int
    attempt: int
    document: Document
    queued_at: Timestamp
    started_at: Timestamp | None
    last_updated_at: Timestamp
    expires_at: Timestamp | None


class NextExecution(Model):
    execution: Execution | None = Field(description="the execution now IN_PROGRESS; null when there is none")
    claimed: bool = Field(description="whether this call claimed it (false: it was already in progress)")
    next_poll_in_seconds: int | None = NEXT_POLL


class StartNext(RequestBody):
    """PUT /device/v1/jobs/next: the IN_PROGRESS execution, else claim the oldest claimable QUEUED one."""

    status_details: StatusDetails | None = None
    step_timeout_minutes: TimeoutMinutes | None = Field(
        default=None, description="a deadline for this step, from now (replaces the previous step's)"
    )


class ExecutionUpdate(RequestBody):
    """PUT /device/v1/jobs/{job_id}/execution: claim, progress, or finish."""

    status: DeviceTarget
    status_details: StatusDetails | None = None
    execution_number: int | None = Field(
        default=None, ge=1, le=2**31 - 1, description="the version the device last saw; 409 if it changed"
    )
    step_timeout_minutes: TimeoutMinutes | None = Field(
        default=None, description="with IN_PROGRESS: a deadline for this step, from now (replaces the previous one)"
    )


class ExecutionUpdated(Deadline):
    job_id: str
    device_id: str
    status: ExecutionStatus = Field(description="QUEUED when a FAILED attempt had a retry left")
    execution_number: int = Field(description="the new version, to send with the next update")
    attempt: int


class ErrorBody(Model):
    message: str
    details: list[dict[str, Any]] | None = None


# Operator API (the create body and the settings a job carries: job_settings.py)


class JobCreated(Model):
    job_id: str
    status: JobStatus
    execution_count: int
    expires_at: Timestamp | None


class RolloutProgress(Model):
    released: int = Field(description="executions released to their devices so far")
    unreleased: int = Field(description="executions not released yet (UNRELEASED)")
    rate_per_minute: int | None = Field(description="the release rate in force; null: not paced")
    next_release_at: Timestamp | None = Field(description="when the next execution may be released")
    stop_reason: str | None = Field(description="why the job stopped early: its abort rule, its end_time, a cancel")
    stopped_at: Timestamp | None


class JobSummary(Model):
    job_id: str
    document_type: str
    document_params: dict[str, Any]
    status: JobStatus
    target_device_id: str | None
    target_group_id: str | None
    target_all: bool
    target_selection: Literal["SNAPSHOT", "CONTINUOUS"]
    expires_at: Timestamp | None
    created_by: str | None
    created_at: Timestamp
    timeout_minutes: int | None
    retry: list[dict[str, Any]] | None
    scheduling: dict[str, Any] | None
    rollout: dict[str, Any] | None
    abort: list[dict[str, Any]] | None
    description: str | None
    template_id: str | None = Field(description="the job template it was created from (which may be gone since)")
    presigned_url_config: dict[str, Any] | None
    updated_at: Timestamp
    total_executions: int
    succeeded_count: int
    failed_count: int = Field(description="FAILED, TIMED_OUT, REJECTED and CANCELED")
    counts: dict[ExecutionStatus, int] = Field(description="executions by status")
    progress: RolloutProgress


class ExecutionSummary(Model):
    device_id: str
    status: ExecutionStatus
    status_details: dict[str, Any] | None
    execution_number: int
    attempt: int
    queued_at: Timestamp
    started_at: Timestamp | None
    last_updated_at: Timestamp
    timeout_at: Timestamp | None


class Attempt(Model):
    """An attempt that ended and was retried."""

    attempt: int
    status: ExecutionStatus
    status_details: dict[str, Any] | None
    started_at: Timestamp | None
    finished_at: Timestamp


class ExecutionDetail(ExecutionSummary, Deadline):
    job_id: str
    attempts: list[Attempt] = Field(description="the attempts before this one, oldest first, with their outcomes")


class TargetsShown(Model):
    device_ids: list[str]
    group_ids: list[str]
    all: bool = Field(description="every device of the tenant")


class JobDetail(JobSummary):
    tenant_id: str
    targets: TargetsShown = Field(description="what the job targets (by id), whatever form it was created with")
    executions: list[ExecutionSummary] = Field(description="one page, by device_id")
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last")


class JobCancel(RequestBody):
    reason: Text | None = Field(default=None, max_length=1024)


class JobCanceled(Model):
    job_id: str
    status: JobStatus


class ExecutionCancel(RequestBody):
    reason: Text | None = Field(default=None, max_length=1024)
    execution_number: int | None = Field(
        default=None, ge=1, description="the version the operator last saw; 409 if it changed"
    )
