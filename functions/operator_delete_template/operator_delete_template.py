"""DELETE /customer/job-templates/{template_id}: the template goes; jobs created from it stay as they are."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path

from jobs_core.domain import templates
from jobs_core.domain.job_settings import TEMPLATE_ID_PATTERN
from jobs_core.domain.templates import TemplateDeleted
from jobs_core.native.http import ERROR_RESPONSES, OPERATOR_SECURITY, handler_for, operator, resolver
from jobs_core.store.db import database

app = resolver()


@app.delete(
    "/customer/job-templates/<template_id>",
    summary="Delete a job template",
    description="Jobs created from it keep their document and settings.",
    security=OPERATOR_SECURITY,
    responses={200: {"description": "the template is gone"}, **ERROR_RESPONSES},
    tags=["templates"],
)
def delete_template(template_id: Annotated[str, Path(pattern=TEMPLATE_ID_PATTERN)]) -> TemplateDeleted:
    return templates.delete(database(), operator(app).tenant_id, template_id)


lambda_handler = handler_for(app)
