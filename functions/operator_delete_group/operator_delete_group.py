"""DELETE /customer/groups/{group_id}: a group and its memberships go; its devices stay."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path

from jobs_core.domain import groups
from jobs_core.domain.fleet_models import GroupDeleted
from jobs_core.domain.models import DEVICE_ID_PATTERN
from jobs_core.native.http import ERROR_RESPONSES, OPERATOR_SECURITY, handler_for, operator, resolver
from jobs_core.store.db import database

app = resolver()


@app.delete(
    "/customer/groups/<group_id>",
    summary="Delete a group",
    description="Its memberships go with it; its devices stay, and jobs that targeted it keep their executions.",
    security=OPERATOR_SECURITY,
    responses={200: {"description": "the group is gone"}, **ERROR_RESPONSES},
    tags=["fleet"],
)
def delete_group(group_id: Annotated[str, Path(pattern=DEVICE_ID_PATTERN)]) -> GroupDeleted:
    return groups.delete(database(), operator(app).tenant_id, group_id)


lambda_handler = handler_for(app)
