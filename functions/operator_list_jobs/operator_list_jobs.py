"""GET /customer/jobs: the tenant's jobs, newest first, with their execution counts."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query

from jobs_core import jobs
from jobs_core.api import ERROR_RESPONSES, OPERATOR_SECURITY, handler_for, operator, resolver
from jobs_core.db import database
from jobs_core.models import JobSummary
from jobs_core.statemachine import JobStatus

app = resolver()


@app.get(
    "/customer/jobs",
    summary="List jobs",
    security=OPERATOR_SECURITY,
    responses={200: {"description": "one page of jobs, newest first"}, **ERROR_RESPONSES},
    tags=["operator"],
)
def list_jobs(
    status: Annotated[JobStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[JobSummary]:
    return jobs.list_jobs(database(), operator(app).tenant_id, status, limit, offset)


lambda_handler = handler_for(app)
