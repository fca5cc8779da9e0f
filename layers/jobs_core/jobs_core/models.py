"""Request and response bodies, shared by the handlers and the OpenAPI document."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer, model_validator

from jobs_core.statemachine import ExecutionStatus, JobStatus

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


class Request(Model):
    """A request body: the wire types of openapi.json, strictly (a string is not an integer and 1
    is not a boolean), and no field the schema does not name."""

    model_config = ConfigDict(defer_build=True, strict=True, extra="forbid")


class Document(Model):
    type: str
    params: dict[str, Any]


class PendingJob(Model):
    job_id: str
    execution_number: int
    document: Document
    queued_at: Timestamp
    expires_at: Timestamp | None


class PendingJobs(Model):
    jobs: list[PendingJob]


class Execution(Model):
    job_id: str
    device_id: str
    status: ExecutionStatus
    status_details: dict[str, Any] | None
    execution_number: int
    document: Document
    queued_at: Timestamp
    started_at: Timestamp | None
    last_updated_at: Timestamp
    expires_at: Timestamp | None


class ExecutionUpdate(Request):
    """PUT /device/v1/jobs/{job_id}/execution: claim, progress, or finish."""

    status: DeviceTarget
    status_details: StatusDetails | None = None
    execution_number: int | None = Field(
        default=None, ge=1, le=2**31 - 1, description="the version the device last saw; 409 if it changed"
    )


class ExecutionUpdated(Model):
    job_id: str
    device_id: str
    status: ExecutionStatus
    execution_number: int = Field(description="the new version, to send with the next update")


class ErrorBody(Model):
    message: str
    details: list[dict[str, Any]] | None = None


# Operator API


class JobCreate(Request):
    """POST /customer/jobs. Exactly one target: a device, a group, or every device of the tenant."""

    job_id: str | None = Field(default=None, pattern=JOB_ID_PATTERN, description="a uuid4 when absent")
    document_type: Text = Field(min_length=1, max_length=100)
    document_params: DocumentParams = Field(default_factory=dict)
    target_device_id: str | None = Field(default=None, pattern=DEVICE_ID_PATTERN)
    target_group_id: str | None = Field(default=None, pattern=DEVICE_ID_PATTERN)
    target_all: bool = False
    expires_in_hours: int | None = Field(default=24, ge=1, le=720, description="null: never expires")

    @model_validator(mode="after")
    def _exactly_one_target(self) -> JobCreate:
        chosen = [self.target_device_id is not None, self.target_group_id is not None, self.target_all]
        if sum(chosen) != 1:
            raise ValueError("exactly one of target_device_id, target_group_id, target_all must be set")
        return self


class JobCreated(Model):
    job_id: str
    status: JobStatus
    execution_count: int
    expires_at: Timestamp | None


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
    total_executions: int
    succeeded_count: int
    failed_count: int = Field(description="FAILED, TIMED_OUT and REJECTED")


class ExecutionSummary(Model):
    device_id: str
    status: ExecutionStatus
    status_details: dict[str, Any] | None
    execution_number: int
    queued_at: Timestamp
    started_at: Timestamp | None
    last_updated_at: Timestamp


class JobDetail(JobSummary):
    tenant_id: str
    updated_at: Timestamp
    counts: dict[ExecutionStatus, int] = Field(description="executions by status")
    executions: list[ExecutionSummary] = Field(description="one page, by device_id")
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last")


class JobCancel(Request):
    reason: Text | None = Field(default=None, max_length=1024)


class JobCanceled(Model):
    job_id: str
    status: JobStatus
