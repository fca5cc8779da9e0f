"""AWS IoT Jobs' control plane (boto3 `iot`), the operations on jobs, over the same operator logic
as the native API (domain/jobs_create.py, jobs_read.py, jobs_cancel.py), in the operator's
tenant, under the same row-level security. The operations on executions: job_executions.py.

Mapping: a target is a thing ARN (one device) or a thing-group ARN (a group), exactly one; the
document and the configs as job_configs.py maps them, and schedulingConfig is our scheduling; a
jobTemplateArn names a job template of the tenant (job_templates.py), whose document and configs
the job takes unless it gives its own, documentParameters filling the document's parameters.
Executions not released yet do not exist for AWS (it creates one when it notifies the thing):
they are neither listed nor counted here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from jobs_core.aws.data_plane import document_text
from jobs_core.aws.job_configs import configs_shown, document_fields, settings_fields, validated
from jobs_core.aws.shapes import (
    TARGET_ARN,
    AssociateTargetsWithJobRequest,
    AwsError,
    AwsJobSummary,
    CancelJobRequest,
    CreateJobRequest,
    DescribeJobResponse,
    GetJobDocumentResponse,
    Job,
    JobProcessDetails,
    JobReference,
    ListJobsResponse,
    arn,
)
from jobs_core.aws.template_shapes import template_of
from jobs_core.domain import jobs_cancel, jobs_create, jobs_read
from jobs_core.domain.job_settings import JobCreate
from jobs_core.domain.models import JobDetail
from jobs_core.domain.statemachine import ExecutionStatus, JobStatus
from jobs_core.errors import Conflict, InvalidRequest, NotFound
from jobs_core.store.db import Database

MAX_RESULTS = 250
UNRELEASED = str(ExecutionStatus.UNRELEASED)


@contextmanager
def aws_errors(**codes: str) -> Iterator[None]:
    """Our domain errors as this operation's AWS codes (NotFound=..., Conflict=..., ...)."""
    try:
        yield
    except (NotFound, Conflict, InvalidRequest) as exc:
        for kind in type(exc).__mro__:
            if kind.__name__ in codes:
                raise AwsError(codes[kind.__name__], exc.message) from None
        raise AwsError("InvalidRequestException", exc.message) from None


def _unsupported(request: CreateJobRequest) -> str | None:
    given = [
        name
        for name in ("documentSource", "destinationPackageVersions", "namespaceId")
        if getattr(request, name) is not None
    ]
    if request.schedulingConfig is not None and request.schedulingConfig.maintenanceWindows:
        given.append("schedulingConfig.maintenanceWindows")
    return ", ".join(given) or None


def _time(text: str | None) -> str | None:
    """AWS's StringDateTime ("2030-01-01T00:00", UTC when it names no offset) as ISO 8601 with one."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise AwsError("InvalidRequestException", f"not a date and time: {text[:64]!r}") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


def _create_fields(job_id: str, request: CreateJobRequest) -> dict[str, Any]:
    if (unsupported := _unsupported(request)) is not None:
        raise AwsError("InvalidRequestException", f"not supported by this service: {unsupported}")
    fields: dict[str, Any] = {
        "job_id": job_id,
        "expires_in_hours": None,  # AWS jobs do not expire
        "target_selection": request.targetSelection or "SNAPSHOT",
        **target_fields(request.targets),
        **settings_fields(request),
    }
    if request.jobTemplateArn is not None:  # the template's document and configs, unless given here
        fields["template_id"] = template_of(request.jobTemplateArn)
    if request.document is not None or request.jobTemplateArn is None:
        fields |= document_fields(request.document)
    if request.description is not None:
        fields["description"] = request.description
    if request.documentParameters is not None:
        fields["document_parameters"] = request.documentParameters
    if (scheduling := request.schedulingConfig) is not None:
        fields["scheduling"] = {
            k: v
            for k, v in (
                ("start_time", _time(scheduling.startTime)),
                ("end_time", _time(scheduling.endTime)),
                ("end_behavior", scheduling.endBehavior),
            )
            if v is not None
        }
    return fields


def create_job(db: Database, tenant_id: str, user: str | None, job_id: str, request: CreateJobRequest) -> JobReference:
    create = validated(JobCreate, _create_fields(job_id, request))
    job_arn = arn("job", job_id)
    try:
        jobs_create.create(db, tenant_id, user, create)
    except Conflict as exc:
        raise AwsError("ResourceAlreadyExistsException", exc.message, resourceId=job_id, resourceArn=job_arn) from None
    except NotFound as exc:  # a target, or the template
        raise AwsError("ResourceNotFoundException", exc.message) from None
    except InvalidRequest as exc:  # parameters that do not fit the document (the native API's 422)
        raise AwsError("InvalidRequestException", exc.message) from None
    return JobReference(jobArn=job_arn, jobId=job_id, description=request.description)


# What AWS shows of a job that the native detail leaves out.
EXTRA = """
SELECT reason_code, comment, stop_action
FROM jobs WHERE tenant_id = current_setting('jobs.tenant_id', true) AND job_id = %(job_id)s
"""


def target_fields(given: list[str]) -> dict[str, Any]:
    """Target ARNs (things and thing groups, mixed; any region and account) as the create body's
    targets: one as target_device_id or target_group_id, several as `targets`."""
    found = [TARGET_ARN.fullmatch(target) for target in given]
    if not all(found):
        raise AwsError("InvalidRequestException", "a target is a thing or thing group ARN")
    devices = [m.group(2) for m in found if m and m.group(1) == "thing"]
    groups = [m.group(2) for m in found if m and m.group(1) == "thinggroup"]
    if len(devices) + len(groups) == 1:
        return {"target_device_id": devices[0]} if devices else {"target_group_id": groups[0]}
    return {"targets": {"device_ids": devices, "group_ids": groups}}


def _targets(job: JobDetail) -> list[str]:
    """The job's targets as ARNs; a job of every device shows none (AWS has no such target)."""
    return [arn("thing", d) for d in job.targets.device_ids] + [arn("thinggroup", g) for g in job.targets.group_ids]


def _configs(detail: JobDetail) -> dict[str, Any]:
    """Our settings in AWS's names."""
    out = configs_shown(detail)
    if detail.scheduling:
        out["schedulingConfig"] = {
            "startTime": detail.scheduling.get("start_time"),
            "endTime": detail.scheduling.get("end_time"),
            "endBehavior": detail.scheduling.get("end_behavior"),
        }
    if detail.template_id is not None:
        out["jobTemplateArn"] = arn("jobtemplate", detail.template_id)
    return out


def _over(status: JobStatus) -> bool:
    return status in (JobStatus.COMPLETED, JobStatus.CANCELED)


def describe_job(db: Database, tenant_id: str, job_id: str) -> DescribeJobResponse:
    with aws_errors(NotFound="ResourceNotFoundException"):
        detail = jobs_read.detail(db, tenant_id, job_id, limit=0, cursor=None)
    with db.transaction(tenant_id=tenant_id) as conn:
        extra = conn.execute(EXTRA, {"job_id": job_id})
    row = extra.fetchone()
    if row is None:  # deleted in between
        raise AwsError("ResourceNotFoundException", f"job {job_id} not found")
    counts = detail.counts
    job = Job(
        jobArn=arn("job", job_id),
        jobId=job_id,
        targetSelection=detail.target_selection,
        status=str(detail.status),
        forceCanceled=row["stop_action"] == "FORCE_CANCEL" if detail.status is JobStatus.CANCELED else None,
        reasonCode=row["reason_code"],
        comment=row["comment"],
        targets=_targets(detail),
        description=detail.description,
        createdAt=detail.created_at.timestamp(),
        lastUpdatedAt=detail.updated_at.timestamp(),
        completedAt=detail.updated_at.timestamp() if _over(detail.status) else None,
        jobProcessDetails=JobProcessDetails(
            numberOfCanceledThings=counts[ExecutionStatus.CANCELED],
            numberOfSucceededThings=counts[ExecutionStatus.SUCCEEDED],
            numberOfFailedThings=counts[ExecutionStatus.FAILED],
            numberOfRejectedThings=counts[ExecutionStatus.REJECTED],
            numberOfQueuedThings=counts[ExecutionStatus.QUEUED],
            numberOfInProgressThings=counts[ExecutionStatus.IN_PROGRESS],
            numberOfRemovedThings=counts[ExecutionStatus.REMOVED],
            numberOfTimedOutThings=counts[ExecutionStatus.TIMED_OUT],
        ),
        isConcurrent=detail.progress.unreleased > 0 and detail.status is JobStatus.IN_PROGRESS,
        **_configs(detail),
    )
    return DescribeJobResponse(job=job)


def list_jobs(
    db: Database,
    tenant_id: str,
    status: str | None,
    group: str | None,
    max_results: int | None,
    next_token: str | None,
) -> ListJobsResponse:
    if status is not None and status not in {str(s) for s in JobStatus}:
        return ListJobsResponse(jobs=[])  # DELETION_IN_PROGRESS: never here
    with aws_errors():
        page = jobs_read.list_jobs(
            db, tenant_id, JobStatus(status) if status else None, max_results or 50, 0, next_token, group=group
        )
    return ListJobsResponse(
        jobs=[
            AwsJobSummary(
                jobArn=arn("job", job.job_id),
                jobId=job.job_id,
                targetSelection=job.target_selection,
                status=str(job.status),
                createdAt=job.created_at.timestamp(),
                lastUpdatedAt=job.updated_at.timestamp(),
                completedAt=job.updated_at.timestamp() if _over(job.status) else None,
                isConcurrent=job.progress.unreleased > 0 and job.status is JobStatus.IN_PROGRESS,
            )
            for job in page.jobs
        ],
        nextToken=page.next_cursor,
    )


def associate_targets(
    db: Database, tenant_id: str, job_id: str, request: AssociateTargetsWithJobRequest
) -> JobReference:
    """More thing groups for a continuous job in progress; their things get their executions now."""
    found = target_fields(request.targets)
    group_ids = found.get("targets", {}).get("group_ids", []) + [found[k] for k in ("target_group_id",) if k in found]
    if len(group_ids) != len(request.targets):
        raise AwsError("InvalidRequestException", "the targets of AssociateTargetsWithJob are thing group ARNs")
    with aws_errors(NotFound="ResourceNotFoundException", LimitExceeded="LimitExceededException"):
        jobs_create.associate(db, tenant_id, job_id, group_ids)
    return JobReference(jobArn=arn("job", job_id), jobId=job_id)


def cancel_job(db: Database, tenant_id: str, job_id: str, force: bool, request: CancelJobRequest) -> JobReference:
    with aws_errors(NotFound="ResourceNotFoundException"):
        jobs_cancel.cancel(
            db,
            tenant_id,
            job_id,
            request.comment or request.reasonCode,
            force=force,
            reason_code=request.reasonCode,
            comment=request.comment,
        )
    return JobReference(jobArn=arn("job", job_id), jobId=job_id)


def delete_job(db: Database, tenant_id: str, job_id: str, force: bool) -> None:
    with aws_errors(NotFound="ResourceNotFoundException", Refused="InvalidStateTransitionException"):
        jobs_cancel.delete(db, tenant_id, job_id, force)


def get_job_document(db: Database, tenant_id: str, job_id: str) -> GetJobDocumentResponse:
    with aws_errors(NotFound="ResourceNotFoundException"):
        detail = jobs_read.detail(db, tenant_id, job_id, limit=0, cursor=None)
    return GetJobDocumentResponse(document=document_text(detail.document_type, detail.document_params))
