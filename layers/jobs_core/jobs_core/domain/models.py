"""Request and response bodies, shared by the handlers and the OpenAPI document."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, PlainSerializer, model_validator

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
        size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
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


class PendingJobs(Model):
    jobs: list[PendingJob]


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


# Operator API


class RetryCriterion(RequestBody):
    failure_type: Literal["FAILED", "TIMED_OUT", "ALL"]
    number_of_retries: int = Field(ge=0, le=10)


EndBehavior = Literal["STOP_ROLLOUT", "CANCEL", "FORCE_CANCEL"]
FailureType = Literal["FAILED", "REJECTED", "TIMED_OUT", "ALL"]
# A time in the request: ISO 8601 with an offset (a JSON string, though the body is strict).
AwareTime = Annotated[AwareDatetime, Field(strict=False)]
MIN_SCHEDULE_MINUTES = 30  # from the start (or now) to the end, as AWS requires
MAX_SCHEDULE_AHEAD = timedelta(days=366)


class Scheduling(RequestBody):
    """When the job's rollout starts (before it: SCHEDULED, no device sees it) and ends."""

    start_time: AwareTime | None = Field(default=None, description="default: now; a past time starts at once")
    end_time: AwareTime | None = Field(
        default=None, description=f"at least {MIN_SCHEDULE_MINUTES} minutes after the start and after now"
    )
    end_behavior: EndBehavior | None = Field(
        default=None,
        description="at end_time: STOP_ROLLOUT (release no more; what was released goes on), CANCEL (as the "
        "operator's cancel) or FORCE_CANCEL (also what is in progress); default STOP_ROLLOUT",
    )

    @model_validator(mode="after")
    def _coherent(self) -> Scheduling:
        now = datetime.now(UTC)
        if self.start_time is None and self.end_time is None:
            raise ValueError("give start_time, end_time or both")
        if self.start_time is not None and self.start_time > now + MAX_SCHEDULE_AHEAD:
            raise ValueError("start_time must be within a year from now")
        if self.end_time is None:
            if self.end_behavior is not None:
                raise ValueError("end_behavior needs an end_time")
            return self
        self.end_behavior = self.end_behavior or "STOP_ROLLOUT"
        start = max(self.start_time or now, now)
        if self.end_time < start + timedelta(minutes=MIN_SCHEDULE_MINUTES):
            raise ValueError(f"end_time must be at least {MIN_SCHEDULE_MINUTES} minutes after the start and after now")
        return self


class RateIncreaseCriteria(RequestBody):
    """Exactly one: the rate increases each time this many more things were notified (released to)
    or succeeded since the last increase."""

    number_of_notified_things: int | None = Field(default=None, ge=1, le=1_000_000)
    number_of_succeeded_things: int | None = Field(default=None, ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _exactly_one(self) -> RateIncreaseCriteria:
        if (self.number_of_notified_things is None) == (self.number_of_succeeded_things is None):
            raise ValueError("exactly one of number_of_notified_things, number_of_succeeded_things")
        return self


class ExponentialRate(RequestBody):
    base_rate_per_minute: int = Field(ge=1, le=1000)
    increment_factor: float = Field(ge=1.1, le=5.0, multiple_of=0.1, description="one decimal, as AWS allows")
    rate_increase_criteria: RateIncreaseCriteria


class Rollout(RequestBody):
    """How fast the job's executions are released to devices, in queue order (by device id)."""

    maximum_per_minute: int | None = Field(
        default=None, ge=1, le=1000, description="the rate; with exponential_rate its ceiling (default 1000)"
    )
    exponential_rate: ExponentialRate | None = None

    @model_validator(mode="after")
    def _a_rate(self) -> Rollout:
        if self.maximum_per_minute is None and self.exponential_rate is None:
            raise ValueError("give maximum_per_minute, exponential_rate or both")
        base = self.exponential_rate.base_rate_per_minute if self.exponential_rate else None
        if base is not None and self.maximum_per_minute is not None and base > self.maximum_per_minute:
            raise ValueError("exponential_rate.base_rate_per_minute must not exceed maximum_per_minute")
        return self


class AbortCriterion(RequestBody):
    """Cancel the job once at least min_number_of_executed_things executions finished and at least
    threshold_percentage of them ended in failure_type (ALL: FAILED, REJECTED or TIMED_OUT)."""

    failure_type: FailureType
    action: Literal["CANCEL"]
    threshold_percentage: float = Field(ge=0, le=100)
    min_number_of_executed_things: int = Field(ge=1, le=2**31 - 1)


class JobCreate(RequestBody):
    """POST /customer/jobs. Exactly one target: a device, a group, or every device of the tenant."""

    job_id: str | None = Field(default=None, pattern=JOB_ID_PATTERN, description="a uuid4 when absent")
    document_type: Text = Field(min_length=1, max_length=100)
    document_params: DocumentParams = Field(default_factory=dict)
    target_device_id: str | None = Field(default=None, pattern=DEVICE_ID_PATTERN)
    target_group_id: str | None = Field(default=None, pattern=DEVICE_ID_PATTERN)
    target_all: bool = False
    expires_in_hours: int | None = Field(default=24, ge=1, le=720, description="null: never expires")
    timeout_minutes: TimeoutMinutes | None = Field(
        default=None, description="an execution IN_PROGRESS longer than this is TIMED_OUT; null: no limit"
    )
    retry: list[RetryCriterion] | None = Field(
        default=None,
        max_length=2,
        description="a FAILED or TIMED_OUT execution with retries left is QUEUED again as a new attempt",
    )
    description: Text | None = Field(default=None, max_length=2028, description="a short text for people")
    scheduling: Scheduling | None = None
    rollout: Rollout | None = None
    abort: list[AbortCriterion] | None = Field(
        default=None, min_length=1, max_length=4, description="one rule per failure_type at most"
    )

    @model_validator(mode="after")
    def _exactly_one_target(self) -> JobCreate:
        chosen = [self.target_device_id is not None, self.target_group_id is not None, self.target_all]
        if sum(chosen) != 1:
            raise ValueError("exactly one of target_device_id, target_group_id, target_all must be set")
        for name, criteria in (("retry", self.retry), ("abort", self.abort)):
            types = [criterion.failure_type for criterion in criteria or []]
            if len(set(types)) != len(types):
                raise ValueError(f"at most one {name} criterion per failure_type")
        return self


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
    expires_at: Timestamp | None
    created_by: str | None
    created_at: Timestamp
    timeout_minutes: int | None
    retry: list[dict[str, Any]] | None
    scheduling: dict[str, Any] | None
    rollout: dict[str, Any] | None
    abort: list[dict[str, Any]] | None
    description: str | None
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


class JobDetail(JobSummary):
    tenant_id: str
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
