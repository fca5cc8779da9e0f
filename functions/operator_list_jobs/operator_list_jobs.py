"""GET /customer/jobs: the tenant's jobs, newest first, with their execution counts."""

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query

from jobs_core.domain import jobs_read
from jobs_core.domain.models import JobSummary
from jobs_core.domain.statemachine import JobStatus
from jobs_core.native.http import ERROR_RESPONSES, OPERATOR_SECURITY, handler_for, operator, page, resolver
from jobs_core.store.db import database

app = resolver()


@app.get(
    "/customer/jobs",
    summary="List jobs",
    description=(
        "Newest first. A page holds up to `limit` jobs and stops short of about 1 MiB; the "
        "X-Next-Cursor header, passed back as `cursor`, gives the next page at any depth "
        "(`offset` skips from where the cursor, or the newest job, is)."
    ),
    security=OPERATOR_SECURITY,
    responses={
        200: {
            "description": "one page of jobs, newest first",
            "headers": {"X-Next-Cursor": {"description": "the next page's cursor; absent on the last page"}},
        },
        **ERROR_RESPONSES,
    },
    tags=["operator"],
)
def list_jobs(
    status: Annotated[JobStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Response[list[JobSummary]]:
    found = jobs_read.list_jobs(database(), operator(app).tenant_id, status, limit, offset, cursor)
    return page(found.jobs, found.next_cursor)


lambda_handler = handler_for(app)
