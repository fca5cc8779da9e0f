"""AWS IoT Jobs' wire shapes, as botocore's service models have them (iot-jobs-data 2017-09-29,
iot 2015-05-28): the member names, the types (the data plane's times are epoch seconds as
integers, the control plane's are epoch seconds as numbers), and the error codes with their
status per API. Only what this service speaks is here.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from jobs_core.domain.models import MAX_STATUS_DETAILS_BYTES, Text, TimeoutMinutes, _bounded_json
from jobs_core.settings import settings

# A code (the exception class botocore raises) and its HTTP status, per API (the models differ:
# ThrottlingException is 429 on the data plane and 400 on the control plane).
DATA_PLANE_STATUS = {
    "InvalidRequestException": 400,
    "CertificateValidationException": 400,
    "ResourceNotFoundException": 404,
    "InvalidStateTransitionException": 409,
    "TerminalStateException": 410,
    "ThrottlingException": 429,
    "ServiceUnavailableException": 503,
}
CONTROL_PLANE_STATUS = {
    "InvalidRequestException": 400,
    "ThrottlingException": 400,
    "UnauthorizedException": 401,
    "ResourceNotFoundException": 404,
    "InvalidStateTransitionException": 409,
    "VersionConflictException": 409,
    "ResourceAlreadyExistsException": 409,
    "ConflictException": 409,
    "LimitExceededException": 410,
    "ServiceUnavailableException": 503,
}


class AwsError(Exception):
    """An error as AWS's model names it: the code is the exception class a boto3 client raises."""

    def __init__(self, code: str, message: str, **members: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.members = members  # modelled extra members (resourceId, resourceArn)


DETAILS_KEY = re.compile(r"[a-zA-Z0-9:_-]{1,128}")


def _details_map(value: dict[str, str]) -> dict[str, str]:
    """A statusDetails map: keys [a-zA-Z0-9:_-]{1,128}, values of 1-1,024 printable characters."""
    for key, text in value.items():
        if not DETAILS_KEY.fullmatch(key):
            raise ValueError(f"statusDetails key {key[:40]!r} is not [a-zA-Z0-9:_-]{{1,128}}")
        if not 0 < len(text) <= 1024 or not text.isprintable():
            raise ValueError(f"statusDetails[{key}] must be 1-1024 printable characters")
    return value


DetailsMap = Annotated[dict[str, str], AfterValidator(_details_map), _bounded_json(MAX_STATUS_DETAILS_BYTES)]


class AwsBody(BaseModel):
    """A request body: the model's member names and types; members it does not name are ignored, as
    AWS ignores them."""

    model_config = ConfigDict(defer_build=True, strict=True, extra="ignore")


class AwsShape(BaseModel):
    model_config = ConfigDict(defer_build=True)


ExecutionStatusName = Literal[
    "QUEUED", "IN_PROGRESS", "SUCCEEDED", "FAILED", "TIMED_OUT", "REJECTED", "REMOVED", "CANCELED"
]


# Data plane (iot-jobs-data)


class StartNextPendingJobExecutionRequest(AwsBody):
    statusDetails: DetailsMap | None = None
    stepTimeoutInMinutes: TimeoutMinutes | None = None


class UpdateJobExecutionRequest(AwsBody):
    status: ExecutionStatusName
    statusDetails: DetailsMap | None = None
    stepTimeoutInMinutes: TimeoutMinutes | None = None
    expectedVersion: int | None = Field(default=None, ge=0, le=2**63 - 1)
    includeJobExecutionState: bool = False
    includeJobDocument: bool = False
    executionNumber: int | None = Field(default=None, ge=1, le=2**31 - 1)


class JobExecution(AwsShape):
    """The data plane's JobExecution: times are epoch seconds as integers."""

    jobId: str
    thingName: str
    status: str
    statusDetails: dict[str, str] | None = None
    queuedAt: int | None = None
    startedAt: int | None = None
    lastUpdatedAt: int | None = None
    approximateSecondsBeforeTimedOut: int | None = None
    versionNumber: int | None = None
    executionNumber: int
    jobDocument: str | None = None


class JobExecutionSummary(AwsShape):
    jobId: str
    queuedAt: int
    startedAt: int | None = None
    lastUpdatedAt: int
    versionNumber: int
    executionNumber: int


class GetPendingJobExecutionsResponse(AwsShape):
    inProgressJobs: list[JobExecutionSummary]
    queuedJobs: list[JobExecutionSummary]


class ExecutionResponse(AwsShape):
    """DescribeJobExecution's and StartNextPendingJobExecution's answer (no execution: none)."""

    execution: JobExecution | None = None


class JobExecutionState(AwsShape):
    status: str
    statusDetails: dict[str, str] | None = None
    versionNumber: int


class UpdateJobExecutionResponse(AwsShape):
    executionState: JobExecutionState | None = None
    jobDocument: str | None = None


# Control plane (iot)


class AwsRateIncreaseCriteria(AwsBody):
    """RateIncreaseCriteria (named apart from the native one in the OpenAPI document)."""

    numberOfNotifiedThings: int | None = None
    numberOfSucceededThings: int | None = None


class ExponentialRolloutRate(AwsBody):
    baseRatePerMinute: int
    incrementFactor: float
    rateIncreaseCriteria: AwsRateIncreaseCriteria


class JobExecutionsRolloutConfig(AwsBody):
    maximumPerMinute: int | None = None
    exponentialRate: ExponentialRolloutRate | None = None


class AbortCriteria(AwsBody):
    failureType: str
    action: str
    thresholdPercentage: float
    minNumberOfExecutedThings: int


class AbortConfig(AwsBody):
    criteriaList: list[AbortCriteria] = Field(min_length=1)


class TimeoutConfig(AwsBody):
    inProgressTimeoutInMinutes: int | None = None


class RetryCriteria(AwsBody):
    failureType: str
    numberOfRetries: int


class JobExecutionsRetryConfig(AwsBody):
    criteriaList: list[RetryCriteria] = Field(min_length=1)


class AwsPresignedUrlConfig(AwsBody):
    roleArn: str | None = Field(default=None, min_length=20, max_length=2048)
    expiresInSec: int | None = Field(default=None, ge=60, le=3600)


class SchedulingConfig(AwsBody):
    startTime: str | None = None
    endTime: str | None = None
    endBehavior: str | None = None
    maintenanceWindows: list[dict[str, Any]] | None = None


class CreateJobRequest(AwsBody):
    targets: list[str] = Field(min_length=1)
    document: str | None = Field(default=None, max_length=32768)
    documentSource: str | None = None
    description: Text | None = Field(default=None, max_length=2028)
    presignedUrlConfig: AwsPresignedUrlConfig | None = None
    targetSelection: Literal["CONTINUOUS", "SNAPSHOT"] | None = None
    jobExecutionsRolloutConfig: JobExecutionsRolloutConfig | None = None
    abortConfig: AbortConfig | None = None
    timeoutConfig: TimeoutConfig | None = None
    tags: list[dict[str, Any]] | None = None
    namespaceId: str | None = None
    jobTemplateArn: str | None = Field(default=None, max_length=1600)
    jobExecutionsRetryConfig: JobExecutionsRetryConfig | None = None
    documentParameters: dict[str, str] | None = None
    schedulingConfig: SchedulingConfig | None = None
    destinationPackageVersions: list[str] | None = None


class AssociateTargetsWithJobRequest(AwsBody):
    targets: list[str] = Field(min_length=1, max_length=100)
    comment: Text | None = Field(default=None, max_length=2028)


class CancelJobRequest(AwsBody):
    reasonCode: str | None = Field(default=None, max_length=128, pattern=r"^[A-Z0-9_]+$")
    comment: Text | None = Field(default=None, max_length=2028)


class CancelJobExecutionRequest(AwsBody):
    expectedVersion: int | None = Field(default=None, ge=0, le=2**63 - 1)
    statusDetails: DetailsMap | None = None


class JobReference(AwsShape):
    """CreateJob's and CancelJob's answer."""

    jobArn: str
    jobId: str
    description: str | None = None


class JobProcessDetails(AwsShape):
    numberOfCanceledThings: int
    numberOfSucceededThings: int
    numberOfFailedThings: int
    numberOfRejectedThings: int
    numberOfQueuedThings: int
    numberOfInProgressThings: int
    numberOfRemovedThings: int
    numberOfTimedOutThings: int


class Job(AwsShape):
    jobArn: str
    jobId: str
    targetSelection: str
    status: str
    forceCanceled: bool | None = None
    reasonCode: str | None = None
    comment: str | None = None
    targets: list[str]
    description: str | None = None
    jobExecutionsRolloutConfig: dict[str, Any] | None = None
    abortConfig: dict[str, Any] | None = None
    createdAt: float
    lastUpdatedAt: float
    completedAt: float | None = None
    jobProcessDetails: JobProcessDetails
    timeoutConfig: dict[str, Any] | None = None
    jobExecutionsRetryConfig: dict[str, Any] | None = None
    schedulingConfig: dict[str, Any] | None = None
    isConcurrent: bool = False
    jobTemplateArn: str | None = None
    presignedUrlConfig: dict[str, Any] | None = None


class DescribeJobResponse(AwsShape):
    job: Job


class AwsJobSummary(AwsShape):
    """ListJobs' JobSummary (named apart from the native JobSummary in the OpenAPI document)."""

    jobArn: str
    jobId: str
    targetSelection: str
    status: str
    createdAt: float
    lastUpdatedAt: float
    completedAt: float | None = None
    isConcurrent: bool = False


class ListJobsResponse(AwsShape):
    jobs: list[AwsJobSummary]
    nextToken: str | None = None


class ControlJobExecution(AwsShape):
    """The control plane's JobExecution: statusDetails wrapped in detailsMap, a thingArn, times as
    epoch seconds (numbers), no document."""

    jobId: str
    status: str
    forceCanceled: bool | None = None
    statusDetails: dict[str, dict[str, str]] | None = None
    thingArn: str
    queuedAt: float | None = None
    startedAt: float | None = None
    lastUpdatedAt: float | None = None
    executionNumber: int
    versionNumber: int | None = None
    approximateSecondsBeforeTimedOut: int | None = None


class DescribeJobExecutionResponse(AwsShape):
    execution: ControlJobExecution


class ControlExecutionSummary(AwsShape):
    status: str
    queuedAt: float | None = None
    startedAt: float | None = None
    lastUpdatedAt: float | None = None
    executionNumber: int
    retryAttempt: int


class JobExecutionSummaryForJob(AwsShape):
    thingArn: str
    jobExecutionSummary: ControlExecutionSummary


class JobExecutionSummaryForThing(AwsShape):
    jobId: str
    jobExecutionSummary: ControlExecutionSummary


class ListJobExecutionsForJobResponse(AwsShape):
    executionSummaries: list[JobExecutionSummaryForJob]
    nextToken: str | None = None


class ListJobExecutionsForThingResponse(AwsShape):
    executionSummaries: list[JobExecutionSummaryForThing]
    nextToken: str | None = None


class GetJobDocumentResponse(AwsShape):
    document: str


def epoch(at: datetime | str | None) -> float | None:
    """A time as epoch seconds (the control plane's timestamps)."""
    if at is None:
        return None
    moment = datetime.fromisoformat(at) if isinstance(at, str) else at
    return moment.timestamp()


def epoch_s(at: datetime | str | None) -> int | None:
    """A time as whole epoch seconds (the data plane's `long` times)."""
    seconds = epoch(at)
    return None if seconds is None else int(seconds)


def details_map(details: dict[str, Any] | None) -> dict[str, str] | None:
    """Our status_details (any JSON object) as AWS's string map: strings as they are, other
    values as their JSON text."""
    if details is None:
        return None
    return {
        key: value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        for key, value in details.items()
    }


TARGET_ARN = re.compile(r"arn:aws[a-z-]*:iot:[^:]*:[^:]*:(thing|thinggroup)/(.+)")


def arn(kind: str, name: str) -> str:
    """arn:aws:iot:{region}:{account}:{kind}/{name}, this deployment's region and account."""
    config = settings()
    return f"arn:aws:iot:{config.aws_region}:{config.aws_account_id}:{kind}/{name}"
