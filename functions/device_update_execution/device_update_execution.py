"""PUT /device/v1/jobs/{job_id}/execution: claim, report progress, or finish an execution."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path

from jobs_core.domain import executions
from jobs_core.domain.models import JOB_ID_PATTERN, ExecutionUpdate, ExecutionUpdated
from jobs_core.native.http import DEVICE_SECURITY, ERROR_RESPONSES, handler_for, provision_token, resolver
from jobs_core.store.db import database

app = resolver()


@app.put(
    "/device/v1/jobs/<job_id>/execution",
    summary="Claim, report progress on, or finish this device's execution of a job",
    description=(
        "QUEUED to IN_PROGRESS claims; IN_PROGRESS to IN_PROGRESS reports progress; SUCCEEDED, FAILED "
        "and REJECTED finish. Send the execution_number last seen: a stale one is 409."
    ),
    security=DEVICE_SECURITY,
    responses={200: {"description": "the execution's new status and version"}, **ERROR_RESPONSES},
    tags=["device"],
)
def update_execution(job_id: Annotated[str, Path(pattern=JOB_ID_PATTERN)], change: ExecutionUpdate) -> ExecutionUpdated:
    return executions.update(database(), provision_token(app), job_id, change)


lambda_handler = handler_for(app)
