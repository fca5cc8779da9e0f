"""GET /device/v1/jobs/{job_id}/execution: one execution with its document (resume after a reboot)."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path

from jobs_core.domain import executions
from jobs_core.domain.models import JOB_ID_PATTERN, Execution
from jobs_core.native.http import DEVICE_SECURITY, ERROR_RESPONSES, handler_for, provision_token, resolver
from jobs_core.store.db import database

app = resolver()


@app.get(
    "/device/v1/jobs/<job_id>/execution",
    summary="Read this device's execution of a job",
    security=DEVICE_SECURITY,
    responses={200: {"description": "the execution and its job document"}, **ERROR_RESPONSES},
    tags=["device"],
)
def get_execution(job_id: Annotated[str, Path(pattern=JOB_ID_PATTERN)]) -> Execution:
    return executions.describe(database(), provision_token(app), job_id)


lambda_handler = handler_for(app)
