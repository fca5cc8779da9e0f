"""AWS IoT's job templates on the wire (iot 2015-05-28: CreateJobTemplate, DescribeJobTemplate,
ListJobTemplates, DeleteJobTemplate), as botocore's model has them; the configs they share with a
job are shapes.py's.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

from pydantic import Field

from jobs_core.aws.shapes import (
    AbortConfig,
    AwsBody,
    AwsError,
    AwsPresignedUrlConfig,
    AwsShape,
    JobExecutionsRetryConfig,
    JobExecutionsRolloutConfig,
    TimeoutConfig,
)
from jobs_core.domain.job_settings import TEMPLATE_ID_PATTERN
from jobs_core.domain.models import Text


class CreateJobTemplateRequest(AwsBody):
    jobArn: str | None = None
    documentSource: str | None = None
    document: str | None = Field(default=None, max_length=32768)
    description: Text = Field(max_length=2028)
    presignedUrlConfig: AwsPresignedUrlConfig | None = None
    jobExecutionsRolloutConfig: JobExecutionsRolloutConfig | None = None
    abortConfig: AbortConfig | None = None
    timeoutConfig: TimeoutConfig | None = None
    tags: list[dict[str, Any]] | None = None
    jobExecutionsRetryConfig: JobExecutionsRetryConfig | None = None
    maintenanceWindows: list[dict[str, Any]] | None = None
    destinationPackageVersions: list[str] | None = None


class CreateJobTemplateResponse(AwsShape):
    jobTemplateArn: str
    jobTemplateId: str


class DescribeJobTemplateResponse(AwsShape):
    jobTemplateArn: str
    jobTemplateId: str
    description: str | None = None
    document: str
    createdAt: float
    presignedUrlConfig: dict[str, Any] | None = None
    jobExecutionsRolloutConfig: dict[str, Any] | None = None
    abortConfig: dict[str, Any] | None = None
    timeoutConfig: dict[str, Any] | None = None
    jobExecutionsRetryConfig: dict[str, Any] | None = None


class JobTemplateSummary(AwsShape):
    jobTemplateArn: str
    jobTemplateId: str
    description: str | None = None
    createdAt: float


class ListJobTemplatesResponse(AwsShape):
    jobTemplates: list[JobTemplateSummary]
    nextToken: str | None = None


TEMPLATE_ID = re.compile(TEMPLATE_ID_PATTERN)
# A job template's ARN, any region and account (as a target's): the id is its last part.
TEMPLATE_ARN = re.compile(r"arn:aws[a-z-]*:iot:[^:/]*:[^:/]*:jobtemplate/([A-Za-z0-9_-]{1,64})")


def template_id(value: str) -> str:
    """A jobTemplateId path parameter as the client meant it, checked against AWS's rule."""
    name = unquote(value)
    if not TEMPLATE_ID.fullmatch(name):
        raise AwsError("InvalidRequestException", "jobTemplateId: 1-64 of [a-zA-Z0-9_-]")
    return name


def template_of(job_template_arn: str) -> str:
    """The id of the template a jobTemplateArn names."""
    found = TEMPLATE_ARN.fullmatch(job_template_arn)
    if found is None:
        raise AwsError(
            "InvalidRequestException",
            "jobTemplateArn: arn:aws:iot:REGION:ACCOUNT:jobtemplate/ID, the ID 1-64 of "
            "[a-zA-Z0-9_-] (AWS's managed templates are not supported by this service)",
        )
    return found.group(1)
