"""POST /customer/devices: register one device; its provision token is shown this once."""

from aws_lambda_powertools.event_handler import Response, content_types

from jobs_core.domain import devices
from jobs_core.domain.fleet_models import DeviceCreate, DeviceRegistered
from jobs_core.native.http import ERROR_RESPONSES, OPERATOR_SECURITY, handler_for, operator, resolver
from jobs_core.store.db import database

app = resolver()


@app.post(
    "/customer/devices",
    summary="Register a device",
    description=(
        "The answer carries the device's provision token, this once: it is stored only as a hash. 409 when the "
        "device_id is registered already."
    ),
    security=OPERATOR_SECURITY,
    responses={201: {"description": "the device, with its token"}, **ERROR_RESPONSES},
    tags=["fleet"],
)
def register_device(request: DeviceCreate) -> Response[DeviceRegistered]:
    registered = devices.register_many(database(), operator(app).tenant_id, [request])
    body = DeviceRegistered(
        device_id=request.device_id,
        token=registered.tokens[request.device_id] or "",
        attributes=request.attributes,
        created_at=registered.created_at,
    )
    return Response(status_code=201, content_type=content_types.APPLICATION_JSON, body=body)


lambda_handler = handler_for(app)
