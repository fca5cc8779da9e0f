"""POST /customer/jobs: create a job for one device, a group, or every device of the tenant."""

from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from jobs_core import jobs
from jobs_core.api import ERROR_RESPONSES, OPERATOR_SECURITY, logger, metrics, operator, resolver
from jobs_core.db import database
from jobs_core.models import JobCreate, JobCreated

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
    tenant_id, user = operator(app)
    created = jobs.create(database(), tenant_id, user, request)
    metrics.add_metric(name="JobsCreated", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="ExecutionsQueued", unit=MetricUnit.Count, value=created.execution_count)
    return Response(status_code=201, content_type=content_types.APPLICATION_JSON, body=created)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response: dict[str, Any] = app.resolve(event, context)
    return response
