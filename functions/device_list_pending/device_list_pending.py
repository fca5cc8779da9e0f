"""GET /device/v1/jobs/pending: the device's QUEUED executions, oldest first, at most 10."""

from jobs_core.domain import executions
from jobs_core.domain.models import PendingJobs
from jobs_core.native.http import DEVICE_SECURITY, ERROR_RESPONSES, handler_for, provision_token, resolver
from jobs_core.store.db import database

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


lambda_handler = handler_for(app)
