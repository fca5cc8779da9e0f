"""DELETE /customer/devices/{device_id}/token: no token of the device works any more."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path

from jobs_core.domain import credentials
from jobs_core.domain.fleet_models import TokenRevoked
from jobs_core.domain.models import DEVICE_ID_PATTERN
from jobs_core.native.http import ERROR_RESPONSES, OPERATOR_SECURITY, handler_for, operator, resolver
from jobs_core.store.db import database

app = resolver()


@app.delete(
    "/customer/devices/<device_id>/token",
    summary="Revoke a device's tokens",
    description="From this call on, the device is refused (401) until a new token is issued.",
    security=OPERATOR_SECURITY,
    responses={200: {"description": "the tokens stopped working"}, **ERROR_RESPONSES},
    tags=["fleet"],
)
def revoke_token(device_id: Annotated[str, Path(pattern=DEVICE_ID_PATTERN)]) -> TokenRevoked:
    return credentials.revoke(database(), operator(app).tenant_id, device_id)


lambda_handler = handler_for(app)
