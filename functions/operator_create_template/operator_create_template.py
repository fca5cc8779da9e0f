"""POST /customer/job-templates: a job template, to create jobs from."""

from aws_lambda_powertools.event_handler import Response, content_types

from jobs_core.domain import templates
from jobs_core.domain.templates import TemplateCreate, TemplateDetail
from jobs_core.native.http import ERROR_RESPONSES, OPERATOR_SECURITY, handler_for, operator, resolver
from jobs_core.store.db import database

app = resolver()


@app.post(
    "/customer/job-templates",
    summary="Create a job template",
    description="A document and job settings, under an id: a job created with its template_id takes them. "
    "The document may hold ${aws:iot:parameter:NAME} placeholders (filled by each job) and presigned-URL ones.",
    security=OPERATOR_SECURITY,
    responses={201: {"description": "the template was created"}, **ERROR_RESPONSES},
    tags=["templates"],
)
def create_template(request: TemplateCreate) -> Response[TemplateDetail]:
    created = templates.create(database(), operator(app).tenant_id, request)
    return Response(status_code=201, content_type=content_types.APPLICATION_JSON, body=created)


lambda_handler = handler_for(app)
