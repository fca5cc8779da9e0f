"""GET /customer/groups/{group_id}: a group with its device count."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path

from jobs_core.domain import groups
from jobs_core.domain.fleet_models import GroupDetail
from jobs_core.domain.models import DEVICE_ID_PATTERN
from jobs_core.native.http import ERROR_RESPONSES, OPERATOR_SECURITY, handler_for, operator, resolver
from jobs_core.store.db import database

app = resolver()


@app.get(
    "/customer/groups/<group_id>",
    summary="Describe a group",
    description="Its description and how many devices it has (a count kept with every change, never counted).",
    security=OPERATOR_SECURITY,
    responses={200: {"description": "the group"}, **ERROR_RESPONSES},
    tags=["fleet"],
)
def get_group(group_id: Annotated[str, Path(pattern=DEVICE_ID_PATTERN)]) -> GroupDetail:
    return groups.describe(database(), operator(app).tenant_id, group_id)


lambda_handler = handler_for(app)
