"""DELETE /customer/groups/{group_id}/devices/{device_id}: take a device out of a group."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path

from jobs_core.domain import groups
from jobs_core.domain.fleet_models import GroupMember
from jobs_core.domain.models import DEVICE_ID_PATTERN
from jobs_core.native.http import ERROR_RESPONSES, OPERATOR_SECURITY, handler_for, operator, resolver
from jobs_core.store.db import database

app = resolver()


@app.delete(
    "/customer/groups/<group_id>/devices/<device_id>",
    summary="Remove a device from a group",
    description="404 when the group or the device does not exist, or the device is not a member.",
    security=OPERATOR_SECURITY,
    responses={200: {"description": "the device is no longer a member"}, **ERROR_RESPONSES},
    tags=["fleet"],
)
def remove_group_member(
    group_id: Annotated[str, Path(pattern=DEVICE_ID_PATTERN)],
    device_id: Annotated[str, Path(pattern=DEVICE_ID_PATTERN)],
) -> GroupMember:
    return groups.remove_member(database(), operator(app).tenant_id, group_id, device_id)


lambda_handler = handler_for(app)
