"""GET /customer/jobs: the tenant's jobs, newest first, with their execution counts."""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from jobs_core import jobs
from jobs_core.api import ERROR_RESPONSES, OPERATOR_SECURITY, logger, operator, resolver
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
    tenant_id, _ = operator(app)
    return jobs.list_jobs(database(), tenant_id, status, limit, offset)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response: dict[str, Any] = app.resolve(event, context)
    return response
