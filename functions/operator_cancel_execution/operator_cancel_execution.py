"""DELETE /customer/jobs/{job_id}/executions/{device_id}: cancel one device's execution."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query

from jobs_core.domain import jobs_cancel
from jobs_core.domain.models import DEVICE_ID_PATTERN, JOB_ID_PATTERN, ExecutionCancel, ExecutionDetail
from jobs_core.native.http import ERROR_RESPONSES, OPERATOR_SECURITY, handler_for, operator, resolver
from jobs_core.store.db import database

app = resolver()


@app.delete(
    "/customer/jobs/<job_id>/executions/<device_id>",
    summary="Cancel one device's execution of a job",
    description=(
        "A QUEUED execution becomes REJECTED; with force=true an IN_PROGRESS one becomes CANCELED (the "
        'device\'s next update is refused). Optional body {"reason": ..., "execution_number": ...}: the '
        "reason goes into status_details; a stale execution_number is 409."
    ),
    security=OPERATOR_SECURITY,
    responses={200: {"description": "the execution, canceled"}, **ERROR_RESPONSES},
    tags=["operator"],
)
def cancel_execution(
    job_id: Annotated[str, Path(pattern=JOB_ID_PATTERN)],
    device_id: Annotated[str, Path(pattern=DEVICE_ID_PATTERN)],
    force: Annotated[bool, Query()] = False,
    request: Annotated[ExecutionCancel | None, Body()] = None,
) -> ExecutionDetail:
    tenant_id = operator(app).tenant_id
    return jobs_cancel.cancel_execution(database(), tenant_id, job_id, device_id, request or ExecutionCancel(), force)


lambda_handler = handler_for(app)
