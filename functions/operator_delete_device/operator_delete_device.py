"""DELETE /customer/devices/{device_id}: take a device out of the fleet."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path

from jobs_core.domain import devices
from jobs_core.domain.fleet_models import DeviceDeleted
from jobs_core.domain.models import DEVICE_ID_PATTERN
from jobs_core.native.http import ERROR_RESPONSES, OPERATOR_SECURITY, handler_for, operator, resolver
from jobs_core.store.db import database

app = resolver()


@app.delete(
    "/customer/devices/<device_id>",
    summary="Delete a device",
    description=(
        "In one transaction: its tokens stop working, each of its executions not yet terminal becomes REMOVED "
        '(status_details {"reason": "device deleted"}; a job whose last active execution it was completes), and '
        "its memberships go."
    ),
    security=OPERATOR_SECURITY,
    responses={200: {"description": "the device is gone"}, **ERROR_RESPONSES},
    tags=["fleet"],
)
def delete_device(device_id: Annotated[str, Path(pattern=DEVICE_ID_PATTERN)]) -> DeviceDeleted:
    return devices.delete(database(), operator(app).tenant_id, device_id)


lambda_handler = handler_for(app)
