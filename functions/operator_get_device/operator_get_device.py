"""GET /customer/devices/{device_id}: one device, its groups and the state of its tokens."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path

from jobs_core.domain import devices
from jobs_core.domain.fleet_models import DeviceDetail
from jobs_core.domain.models import DEVICE_ID_PATTERN
from jobs_core.native.http import ERROR_RESPONSES, OPERATOR_SECURITY, handler_for, operator, resolver
from jobs_core.store.db import database

app = resolver()


@app.get(
    "/customer/devices/<device_id>",
    summary="Describe a device",
    description="Its attributes, version, groups and when its token was issued: never a token or its hash.",
    security=OPERATOR_SECURITY,
    responses={200: {"description": "the device"}, **ERROR_RESPONSES},
    tags=["fleet"],
)
def get_device(device_id: Annotated[str, Path(pattern=DEVICE_ID_PATTERN)]) -> DeviceDetail:
    return devices.describe(database(), operator(app).tenant_id, device_id)


lambda_handler = handler_for(app)
