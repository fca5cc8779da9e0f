"""PUT /customer/groups/{group_id}: create a group (201), or set its description (200)."""

from typing import Annotated

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Body, Path

from jobs_core.domain import groups
from jobs_core.domain.fleet_models import GroupDetail, GroupPut
from jobs_core.domain.models import DEVICE_ID_PATTERN
from jobs_core.native.http import ERROR_RESPONSES, OPERATOR_SECURITY, handler_for, operator, resolver
from jobs_core.store.db import database

app = resolver()


@app.put(
    "/customer/groups/<group_id>",
    summary="Create or update a group",
    description='Optional body {"description": ...}. Group ids follow AWS IoT\'s thing group name rule.',
    security=OPERATOR_SECURITY,
    responses={
        200: {"description": "the group existed; its description is set"},
        201: {"description": "the group was created"},
        **ERROR_RESPONSES,
    },
    tags=["fleet"],
)
def put_group(
    group_id: Annotated[str, Path(pattern=DEVICE_ID_PATTERN)], request: Annotated[GroupPut | None, Body()] = None
) -> Response[GroupDetail]:
    description = request.description if request else None
    group, created = groups.put(database(), operator(app).tenant_id, group_id, description)
    return Response(status_code=201 if created else 200, content_type=content_types.APPLICATION_JSON, body=group)


lambda_handler = handler_for(app)
