"""PATCH /customer/devices/{device_id}: merge attributes into the device's."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path

from jobs_core.domain import devices
from jobs_core.domain.fleet_models import DeviceDetail, DeviceUpdate
from jobs_core.domain.models import DEVICE_ID_PATTERN
from jobs_core.native.http import ERROR_RESPONSES, OPERATOR_SECURITY, handler_for, operator, resolver
from jobs_core.store.db import database

app = resolver()


@app.patch(
    "/customer/devices/<device_id>",
    summary="Update a device's attributes",
    description=(
        '`{"attributes": {...}}` is merged into the device\'s (a null value removes that attribute; at most 50 '
        "after the merge); with `version`, only if the device is still at that version (else 409)."
    ),
    security=OPERATOR_SECURITY,
    responses={200: {"description": "the device, updated"}, **ERROR_RESPONSES},
    tags=["fleet"],
)
def update_device(device_id: Annotated[str, Path(pattern=DEVICE_ID_PATTERN)], request: DeviceUpdate) -> DeviceDetail:
    return devices.update(database(), operator(app).tenant_id, device_id, request)


lambda_handler = handler_for(app)
