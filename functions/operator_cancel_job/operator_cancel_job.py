"""DELETE /customer/jobs/{job_id}: cancel a running job; its QUEUED executions become REJECTED (and with
force=true its IN_PROGRESS ones CANCELED)."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query

from jobs_core.domain import jobs_cancel
from jobs_core.domain.models import JOB_ID_PATTERN, JobCancel, JobCanceled
from jobs_core.native.http import ERROR_RESPONSES, OPERATOR_SECURITY, handler_for, operator, resolver
from jobs_core.store.db import database

app = resolver()


@app.delete(
    "/customer/jobs/<job_id>",
    summary="Cancel a job",
    description=(
        'Optional body {"reason": ...}, recorded in the ended executions\' status_details. With force=true the '
        "IN_PROGRESS executions end too, CANCELED (the device's next update is refused)."
    ),
    security=OPERATOR_SECURITY,
    responses={200: {"description": "the job is canceled"}, **ERROR_RESPONSES},
    tags=["operator"],
)
def cancel_job(
    job_id: Annotated[str, Path(pattern=JOB_ID_PATTERN)],
    force: Annotated[bool, Query()] = False,
    request: Annotated[JobCancel | None, Body()] = None,
) -> JobCanceled:
    return jobs_cancel.cancel(database(), operator(app).tenant_id, job_id, request.reason if request else None, force)


lambda_handler = handler_for(app)
