"""GET /device/v1/jobs/pending: the device's QUEUED executions, oldest first, at most 10."""

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from jobs_core import executions
from jobs_core.api import DEVICE_SECURITY, ERROR_RESPONSES, logger, provision_token, resolver
from jobs_core.db import database
from jobs_core.models import PendingJobs

app = resolver()


@app.get(
    "/device/v1/jobs/pending",
    summary="List this device's pending job executions",
    description="QUEUED executions of unexpired, running jobs, oldest first, at most 10.",
    security=DEVICE_SECURITY,
    responses={200: {"description": "the pending executions"}, **ERROR_RESPONSES},
    tags=["device"],
)
def list_pending() -> PendingJobs:
    return executions.pending(database(), provision_token(app))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response: dict[str, Any] = app.resolve(event, context)
    return response
