"""POST /customer/jobs: create a job for one device, a group, or every device of the tenant."""

from aws_lambda_powertools.event_handler import Response, content_types

from jobs_core.domain import jobs_create
from jobs_core.domain.job_settings import JobCreate
from jobs_core.domain.models import JobCreated
from jobs_core.native.http import ERROR_RESPONSES, OPERATOR_SECURITY, handler_for, operator, resolver
from jobs_core.store.db import database

app = resolver()


@app.post(
    "/customer/jobs",
    summary="Create a job",
    description="Targets are resolved once, now: one execution per targeted device.",
    security=OPERATOR_SECURITY,
    responses={201: {"description": "the job was created"}, **ERROR_RESPONSES},
    tags=["operator"],
)
def create_job(request: JobCreate) -> Response[JobCreated]:
    caller = operator(app)
    created = jobs_create.create(database(), caller.tenant_id, caller.user, request)
    return Response(status_code=201, content_type=content_types.APPLICATION_JSON, body=created)


lambda_handler = handler_for(app)
