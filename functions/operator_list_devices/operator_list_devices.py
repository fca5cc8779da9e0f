"""GET /customer/devices: the tenant's devices by id, in a group or with an attribute."""

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query

from jobs_core.domain import devices
from jobs_core.domain.fleet_models import DeviceSummary
from jobs_core.domain.models import DEVICE_ID_PATTERN
from jobs_core.native.http import ERROR_RESPONSES, OPERATOR_SECURITY, PAGED, handler_for, operator, page, resolver
from jobs_core.store.db import database

app = resolver()


@app.get(
    "/customer/devices",
    summary="List devices",
    description=(
        "By device_id. `group_id`: the members of that group (404 if it does not exist); `attribute=name:value` "
        "(the name ends at the first colon): those with that attribute value. The X-Next-Cursor header, passed "
        "back as `cursor`, gives the next page."
    ),
    security=OPERATOR_SECURITY,
    responses={200: PAGED, **ERROR_RESPONSES},
    tags=["fleet"],
)
def list_devices(
    group_id: Annotated[str | None, Query(pattern=DEVICE_ID_PATTERN)] = None,
    attribute: Annotated[str | None, Query(max_length=1000)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Response[list[DeviceSummary]]:
    tenant_id = operator(app).tenant_id
    found = devices.list_devices(database(), tenant_id, limit, cursor, group_id, devices.attribute_filter(attribute))
    return page(found.devices, found.next_cursor)


lambda_handler = handler_for(app)
