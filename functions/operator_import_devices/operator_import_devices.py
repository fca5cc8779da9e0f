"""POST /customer/devices/import: register up to 1,000 devices at once, all or nothing."""

from aws_lambda_powertools.event_handler import Response, content_types

from jobs_core.domain import devices
from jobs_core.domain.fleet_models import DeviceImport, DevicesImported, DeviceToken
from jobs_core.native.http import ERROR_RESPONSES, OPERATOR_SECURITY, handler_for, operator, resolver
from jobs_core.store.db import database

app = resolver()


@app.post(
    "/customer/devices/import",
    summary="Register devices in bulk",
    description=(
        "Up to 1,000 devices in one transaction: all of them, or none (an id listed twice is 400, one "
        "registered already 409, naming them). Each token is shown this once."
    ),
    security=OPERATOR_SECURITY,
    responses={201: {"description": "the devices, with their tokens, in the order given"}, **ERROR_RESPONSES},
    tags=["fleet"],
)
def import_devices(request: DeviceImport) -> Response[DevicesImported]:
    registered = devices.register_many(database(), operator(app).tenant_id, request.devices)
    body = DevicesImported(
        devices=[DeviceToken(device_id=device_id, token=token or "") for device_id, token in registered.tokens.items()]
    )
    return Response(status_code=201, content_type=content_types.APPLICATION_JSON, body=body)


lambda_handler = handler_for(app)
