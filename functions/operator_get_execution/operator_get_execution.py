"""GET /customer/jobs/{job_id}/executions/{device_id}: one device's execution, with its earlier attempts."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path

from jobs_core.domain import jobs_read
from jobs_core.domain.models import DEVICE_ID_PATTERN, JOB_ID_PATTERN, ExecutionDetail
from jobs_core.native.http import ERROR_RESPONSES, OPERATOR_SECURITY, handler_for, operator, resolver
from jobs_core.store.db import database

app = resolver()


@app.get(
    "/customer/jobs/<job_id>/executions/<device_id>",
    summary="Read one device's execution of a job",
    description="With the outcome of every attempt before this one (retries), oldest first.",
    security=OPERATOR_SECURITY,
    responses={200: {"description": "the execution"}, **ERROR_RESPONSES},
    tags=["operator"],
)
def get_execution(
    job_id: Annotated[str, Path(pattern=JOB_ID_PATTERN)], device_id: Annotated[str, Path(pattern=DEVICE_ID_PATTERN)]
) -> ExecutionDetail:
    return jobs_read.execution(database(), operator(app).tenant_id, job_id, device_id)


lambda_handler = handler_for(app)
