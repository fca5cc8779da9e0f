"""PUT /customer/groups/{group_id}/devices/{device_id}: add a device to a group (idempotent)."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path

from jobs_core.domain import groups
from jobs_core.domain.fleet_models import GroupMember
from jobs_core.domain.models import DEVICE_ID_PATTERN
from jobs_core.native.http import ERROR_RESPONSES, OPERATOR_SECURITY, handler_for, operator, resolver
from jobs_core.store.db import database

app = resolver()


@app.put(
    "/customer/groups/<group_id>/devices/<device_id>",
    summary="Add a device to a group",
    description="200 whether or not it was a member already (`changed` says which); 404: unknown group or device.",
    security=OPERATOR_SECURITY,
    responses={200: {"description": "the device is a member"}, **ERROR_RESPONSES},
    tags=["fleet"],
)
def add_group_member(
    group_id: Annotated[str, Path(pattern=DEVICE_ID_PATTERN)],
    device_id: Annotated[str, Path(pattern=DEVICE_ID_PATTERN)],
) -> GroupMember:
    return groups.add_member(database(), operator(app).tenant_id, group_id, device_id)


lambda_handler = handler_for(app)
