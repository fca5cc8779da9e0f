"""GET /customer/job-templates: the tenant's job templates by id."""

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query

from jobs_core.domain import templates
from jobs_core.domain.templates import TemplateDetail
from jobs_core.native.http import ERROR_RESPONSES, OPERATOR_SECURITY, PAGED, handler_for, operator, page, resolver
from jobs_core.store.db import database

app = resolver()


@app.get(
    "/customer/job-templates",
    summary="List job templates",
    description="By template_id; the X-Next-Cursor header, passed back as `cursor`, gives the next page.",
    security=OPERATOR_SECURITY,
    responses={200: PAGED, **ERROR_RESPONSES},
    tags=["templates"],
)
def list_templates(
    limit: Annotated[int, Query(ge=1, le=250)] = 100,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Response[list[TemplateDetail]]:
    found = templates.list_templates(database(), operator(app).tenant_id, limit, cursor)
    return page(found.templates, found.next_cursor)


lambda_handler = handler_for(app)
