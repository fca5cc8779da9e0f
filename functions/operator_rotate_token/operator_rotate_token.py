"""POST /customer/devices/{device_id}/token: a new provision token, the old one kept for a while."""

from typing import Annotated

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Body, Path

from jobs_core.domain import credentials
from jobs_core.domain.fleet_models import DeviceToken, TokenRotate
from jobs_core.domain.models import DEVICE_ID_PATTERN
from jobs_core.native.http import ERROR_RESPONSES, OPERATOR_SECURITY, handler_for, operator, resolver
from jobs_core.store.db import database

app = resolver()


@app.post(
    "/customer/devices/<device_id>/token",
    summary="Issue a new token for a device",
    description=(
        "The new token is shown this once. The token it replaces keeps working `previous_valid_minutes` (0..1440, "
        "default 0: it stops now); one an earlier rotation replaced stops now. A device without a token (revoked, "
        "or created through AWS's CreateThing) gets one this way."
    ),
    security=OPERATOR_SECURITY,
    responses={201: {"description": "the new token"}, **ERROR_RESPONSES},
    tags=["fleet"],
)
def rotate_token(
    device_id: Annotated[str, Path(pattern=DEVICE_ID_PATTERN)], request: Annotated[TokenRotate | None, Body()] = None
) -> Response[DeviceToken]:
    issued = credentials.rotate(database(), operator(app).tenant_id, device_id, request or TokenRotate())
    return Response(status_code=201, content_type=content_types.APPLICATION_JSON, body=issued)


lambda_handler = handler_for(app)
