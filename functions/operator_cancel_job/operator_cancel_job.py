"""DELETE /customer/jobs/{job_id}: cancel a running job; its QUEUED executions become REJECTED."""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from jobs_core import jobs
from jobs_core.api import ERROR_RESPONSES, OPERATOR_SECURITY, logger, operator, resolver
from jobs_core.db import database
from jobs_core.models import JOB_ID_PATTERN, JobCancel, JobCanceled

app = resolver()


@app.delete(
    "/customer/jobs/<job_id>",
    summary="Cancel a job",
    description='Optional body {"reason": ...}, recorded in the rejected executions\' status_details.',
    security=OPERATOR_SECURITY,
    responses={200: {"description": "the job is canceled"}, **ERROR_RESPONSES},
    tags=["operator"],
)
def cancel_job(
    job_id: Annotated[str, Path(pattern=JOB_ID_PATTERN)],
    request: Annotated[JobCancel | None, Body()] = None,
) -> JobCanceled:
    tenant_id, _ = operator(app)
    return jobs.cancel(database(), tenant_id, job_id, request.reason if request else None)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response: dict[str, Any] = app.resolve(event, context)
    return response
