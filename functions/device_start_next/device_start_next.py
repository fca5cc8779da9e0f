"""PUT /device/v1/jobs/next: the device's IN_PROGRESS execution, else its oldest claimable QUEUED one, claimed."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body

from jobs_core.domain import executions
from jobs_core.domain.models import NextExecution, StartNext
from jobs_core.native.http import DEVICE_SECURITY, ERROR_RESPONSES, handler_for, provision_token, resolver
from jobs_core.store.db import database

app = resolver()


@app.put(
    "/device/v1/jobs/next",
    summary="Start the next job execution",
    description=(
        "Returns the device's IN_PROGRESS execution, unchanged, if it has one; else claims its oldest "
        "claimable QUEUED one (optional status_details and step_timeout_minutes) and returns it with its "
        'document; {"execution": null} when there is none. One call, one round trip to the database.'
    ),
    security=DEVICE_SECURITY,
    responses={200: {"description": "the execution now IN_PROGRESS, or null"}, **ERROR_RESPONSES},
    tags=["device"],
)
def start_next(request: Annotated[StartNext | None, Body()] = None) -> NextExecution:
    return executions.start_next(database(), provision_token(app), request or StartNext())


lambda_handler = handler_for(app)
