"""AWS IoT's job templates (boto3 `iot`: CreateJobTemplate, DescribeJobTemplate, ListJobTemplates,
DeleteJobTemplate) over domain/templates.py, in the operator's tenant, under the same row-level
security as the native routes. CreateJob's jobTemplateArn names one (aws/jobs.py).

Mapping: the document and the configs as a job's (job_configs.py); a template is made from a
document given here only (documentSource and jobArn are not supported), and its document may hold
`${aws:iot:parameter:NAME}` placeholders (AWS allows them in its managed templates only) and
`${aws:iot:s3-presigned-url:...}` ones, checked here: a placeholder that cannot be used is an
InvalidRequestException. A duplicate id is AWS's ConflictException (409, with resourceId), as
its model has it for this operation.
"""

from __future__ import annotations

from jobs_core.aws.data_plane import document_text
from jobs_core.aws.job_configs import configs_shown, document_fields, settings_fields, validated
from jobs_core.aws.jobs import aws_errors
from jobs_core.aws.shapes import AwsError, arn
from jobs_core.aws.template_shapes import (
    CreateJobTemplateRequest,
    CreateJobTemplateResponse,
    DescribeJobTemplateResponse,
    JobTemplateSummary,
    ListJobTemplatesResponse,
)
from jobs_core.domain import templates
from jobs_core.domain.templates import TemplateCreate
from jobs_core.errors import Conflict, InvalidRequest
from jobs_core.store.db import Database

UNSUPPORTED = ("jobArn", "documentSource", "maintenanceWindows", "destinationPackageVersions")


def create_job_template(
    db: Database, tenant_id: str, template_id: str, request: CreateJobTemplateRequest
) -> CreateJobTemplateResponse:
    given = [name for name in UNSUPPORTED if getattr(request, name) is not None]
    if given:
        raise AwsError("InvalidRequestException", f"not supported by this service: {', '.join(given)}")
    fields = {
        "template_id": template_id,
        "description": request.description,
        **document_fields(request.document),
        **settings_fields(request),
    }
    create = validated(TemplateCreate, fields)
    try:
        templates.create(db, tenant_id, create)
    except Conflict as exc:
        raise AwsError("ConflictException", exc.message, resourceId=template_id) from None
    except InvalidRequest as exc:  # a placeholder that cannot be used (the native API's 422)
        raise AwsError("InvalidRequestException", exc.message) from None
    return CreateJobTemplateResponse(jobTemplateArn=arn("jobtemplate", template_id), jobTemplateId=template_id)


def describe_job_template(db: Database, tenant_id: str, template_id: str) -> DescribeJobTemplateResponse:
    with aws_errors(NotFound="ResourceNotFoundException"):
        detail = templates.describe(db, tenant_id, template_id)
    return DescribeJobTemplateResponse(
        jobTemplateArn=arn("jobtemplate", template_id),
        jobTemplateId=template_id,
        description=detail.description,
        document=document_text(detail.document_type, detail.document_params),
        createdAt=detail.created_at.timestamp(),
        **configs_shown(detail),
    )


def list_job_templates(
    db: Database, tenant_id: str, max_results: int | None, next_token: str | None
) -> ListJobTemplatesResponse:
    with aws_errors():
        page = templates.list_templates(db, tenant_id, max_results or 50, next_token)
    return ListJobTemplatesResponse(
        jobTemplates=[
            JobTemplateSummary(
                jobTemplateArn=arn("jobtemplate", found.template_id),
                jobTemplateId=found.template_id,
                description=found.description,
                createdAt=found.created_at.timestamp(),
            )
            for found in page.templates
        ],
        nextToken=page.next_cursor,
    )


def delete_job_template(db: Database, tenant_id: str, template_id: str) -> None:
    with aws_errors(NotFound="ResourceNotFoundException"):
        templates.delete(db, tenant_id, template_id)
