"""GET /customer/jobs/{job_id}: a job, its counts by status, and one page of its executions."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from jobs_core.domain import jobs_read
from jobs_core.domain.models import JOB_ID_PATTERN, JobDetail
from jobs_core.domain.statemachine import ExecutionStatus
from jobs_core.native.http import ERROR_RESPONSES, OPERATOR_SECURITY, handler_for, operator, resolver
from jobs_core.store.db import database

app = resolver()


@app.get(
    "/customer/jobs/<job_id>",
    summary="Read a job with a page of its executions",
    description="`executions_status` lists the executions in that status only (the cursor pages on by device id).",
    security=OPERATOR_SECURITY,
    responses={200: {"description": "the job"}, **ERROR_RESPONSES},
    tags=["operator"],
)
def get_job(
    job_id: Annotated[str, Path(pattern=JOB_ID_PATTERN)],
    executions_limit: Annotated[int, Query(ge=1, le=jobs_read.MAX_EXECUTIONS_PAGE)] = jobs_read.MAX_EXECUTIONS_PAGE,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    executions_status: Annotated[ExecutionStatus | None, Query()] = None,
) -> JobDetail:
    tenant_id = operator(app).tenant_id
    return jobs_read.detail(database(), tenant_id, job_id, executions_limit, cursor, executions_status)


lambda_handler = handler_for(app)
