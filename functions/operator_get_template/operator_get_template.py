"""GET /customer/job-templates/{template_id}: a job template, with the names of its parameters."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path

from jobs_core.domain import templates
from jobs_core.domain.job_settings import TEMPLATE_ID_PATTERN
from jobs_core.domain.templates import TemplateDetail
from jobs_core.native.http import ERROR_RESPONSES, OPERATOR_SECURITY, handler_for, operator, resolver
from jobs_core.store.db import database

app = resolver()


@app.get(
    "/customer/job-templates/<template_id>",
    summary="Describe a job template",
    description="Its document (placeholders as written), settings, and the parameters a job must give.",
    security=OPERATOR_SECURITY,
    responses={200: {"description": "the template"}, **ERROR_RESPONSES},
    tags=["templates"],
)
def get_template(template_id: Annotated[str, Path(pattern=TEMPLATE_ID_PATTERN)]) -> TemplateDetail:
    return templates.describe(database(), operator(app).tenant_id, template_id)


lambda_handler = handler_for(app)
