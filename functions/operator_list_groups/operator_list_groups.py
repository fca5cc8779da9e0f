"""GET /customer/groups: the tenant's groups by id, with their device counts."""

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query

from jobs_core.domain import groups
from jobs_core.domain.fleet_models import GroupDetail
from jobs_core.native.http import ERROR_RESPONSES, OPERATOR_SECURITY, PAGED, handler_for, operator, page, resolver
from jobs_core.store.db import database

app = resolver()


@app.get(
    "/customer/groups",
    summary="List groups",
    description="By group_id; the X-Next-Cursor header, passed back as `cursor`, gives the next page.",
    security=OPERATOR_SECURITY,
    responses={200: PAGED, **ERROR_RESPONSES},
    tags=["fleet"],
)
def list_groups(
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Response[list[GroupDetail]]:
    found = groups.list_groups(database(), operator(app).tenant_id, limit, cursor)
    return page(found.groups, found.next_cursor)


lambda_handler = handler_for(app)
