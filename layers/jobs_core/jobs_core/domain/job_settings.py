"""The body that creates a job, and the settings a job carries: its targets, how they are selected,
retries, scheduling, rollout and abort rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, model_validator

from jobs_core.domain.models import (
    DEVICE_ID_PATTERN,
    JOB_ID_PATTERN,
    DocumentParams,
    RequestBody,
    Text,
    TimeoutMinutes,
)


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


class PresignedUrlConfig(RequestBody):
    """How the document's presigned-URL placeholders are signed when a device reads it."""

    expires_in_sec: int = Field(default=3600, ge=60, le=3600, description="how long a URL is valid")
    role_arn: str | None = Field(
        default=None,
        min_length=20,
        max_length=2048,
        description="kept and shown, as AWS has it; URLs are signed with the service's own role, which the "
        "deployment grants s3:GetObject on the firmware buckets",
    )


TEMPLATE_ID_PATTERN = JOB_ID_PATTERN  # AWS's jobTemplateId rule
ParameterName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,128}$")]
# Text without control characters, or "}", which would end the placeholder a value may stand in.
ParameterValue = Annotated[str, Field(min_length=1, max_length=512, pattern=r"^[^\x00-\x1f\x7f}]+$")]


def one_per_failure_type(retry: list[RetryCriterion] | None, abort: list[AbortCriterion] | None) -> None:
    for name, criteria in (("retry", retry), ("abort", abort)):
        types = [criterion.failure_type for criterion in criteria or []]
        if len(set(types)) != len(types):
            raise ValueError(f"at most one {name} criterion per failure_type")


MAX_TARGETS = 100  # ids in `targets`, as AWS allows a job
TargetSelection = Literal["SNAPSHOT", "CONTINUOUS"]
TargetId = Annotated[str, Field(pattern=DEVICE_ID_PATTERN)]


class JobTargets(RequestBody):
    """Several targets: devices and groups, at most 100 ids in all; a device named twice, or in
    two of the groups, gets one execution."""

    device_ids: list[TargetId] = Field(default_factory=list)
    group_ids: list[TargetId] = Field(default_factory=list)

    @model_validator(mode="after")
    def _some(self) -> JobTargets:
        n = len(self.device_ids) + len(self.group_ids)
        if not 1 <= n <= MAX_TARGETS:
            raise ValueError(f"1 to {MAX_TARGETS} ids in device_ids and group_ids together")
        return self


class JobCreate(RequestBody):
    """POST /customer/jobs. Exactly one of: a device, a group, every device of the tenant, or
    several devices and groups (`targets`)."""

    job_id: str | None = Field(default=None, pattern=JOB_ID_PATTERN, description="a uuid4 when absent")
    template_id: str | None = Field(
        default=None,
        pattern=TEMPLATE_ID_PATTERN,
        description="take the document and the settings of this job template; what the body gives overrides them",
    )
    document_type: Text | None = Field(default=None, min_length=1, max_length=100, description="unless template_id")
    document_params: DocumentParams = Field(default_factory=dict)
    document_parameters: dict[ParameterName, ParameterValue] | None = Field(
        default=None,
        max_length=10,
        description="values for the document's ${aws:iot:parameter:NAME} placeholders, filled in at creation; "
        "every one the document names, and no other",
    )
    presigned_url_config: PresignedUrlConfig | None = Field(
        default=None,
        description="for the document's ${aws:iot:s3-presigned-url:https://s3.amazonaws.com/BUCKET/KEY} "
        "placeholders, replaced by a fresh presigned GET URL each time a device reads the document",
    )
    target_device_id: str | None = Field(default=None, pattern=DEVICE_ID_PATTERN)
    target_group_id: str | None = Field(default=None, pattern=DEVICE_ID_PATTERN)
    target_all: bool = False
    targets: JobTargets | None = None
    target_selection: TargetSelection = Field(
        default="SNAPSHOT",
        description="SNAPSHOT: the targets' devices now; CONTINUOUS: also every device that becomes a target "
        "while the job runs (joins a target group; registered, for target_all), and a device that leaves the "
        "targets before its execution started gets it REMOVED",
    )
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
        chosen = [
            self.target_device_id is not None,
            self.target_group_id is not None,
            self.target_all,
            self.targets is not None,
        ]
        if sum(chosen) != 1:
            raise ValueError("exactly one of target_device_id, target_group_id, target_all, targets must be set")
        if self.document_type is None and self.template_id is None:
            raise ValueError("give document_type (and document_params), or template_id")
        one_per_failure_type(self.retry, self.abort)
        return self
