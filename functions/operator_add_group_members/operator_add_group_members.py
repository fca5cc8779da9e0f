"""POST /customer/groups/{group_id}/devices: add up to 1,000 devices to a group at once."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path

from jobs_core.domain import groups
from jobs_core.domain.fleet_models import GroupMembersAdd, GroupMembersAdded
from jobs_core.domain.models import DEVICE_ID_PATTERN
from jobs_core.native.http import ERROR_RESPONSES, OPERATOR_SECURITY, handler_for, operator, resolver
from jobs_core.store.db import database

app = resolver()


@app.post(
    "/customer/groups/<group_id>/devices",
    summary="Add devices to a group",
    description=(
        '`{"device_ids": [...]}`, up to 1,000: all of them, or (one is not a registered device of the tenant: 404, '
        "naming it) none. Members already in it are not added again."
    ),
    security=OPERATOR_SECURITY,
    responses={200: {"description": "the devices are members"}, **ERROR_RESPONSES},
    tags=["fleet"],
)
def add_group_members(
    group_id: Annotated[str, Path(pattern=DEVICE_ID_PATTERN)], request: GroupMembersAdd
) -> GroupMembersAdded:
    return groups.add_members(database(), operator(app).tenant_id, group_id, request.device_ids)


lambda_handler = handler_for(app)
