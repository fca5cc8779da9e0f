"""Job templates: a document and the settings of a job (timeout, retries, rollout, abort,
presigned-URL config), kept under an id to create many jobs from, as AWS IoT's job templates.

A job created with a template_id takes the template's document and settings, and whatever its
body gives overrides them; the document's `${aws:iot:parameter:NAME}` placeholders are then filled
from its document_parameters (documents.py). The job keeps a copy: deleting a template leaves its
jobs as they are. Every call runs scoped to the operator's tenant (jobs.tenant_id), which
row-level security enforces.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from psycopg.types.json import Jsonb
from pydantic import Field, ValidationError, model_validator

from jobs_core.domain import documents, paging
from jobs_core.domain.job_settings import (
    TEMPLATE_ID_PATTERN,
    AbortCriterion,
    JobCreate,
    PresignedUrlConfig,
    RetryCriterion,
    Rollout,
    one_per_failure_type,
)
from jobs_core.domain.models import DocumentParams, Model, RequestBody, Text, TimeoutMinutes, Timestamp
from jobs_core.errors import Conflict, NotFound, Unprocessable
from jobs_core.settings import settings
from jobs_core.store.db import Database

TENANT = "current_setting('jobs.tenant_id', true)"
SETTINGS = ("document_type", "document_params", "description", "timeout_minutes", "retry", "rollout", "abort",
            "presigned_url_config")  # fmt: skip
DETAIL = f"template_id, {', '.join(SETTINGS)}, created_at"

CREATE = f"""
INSERT INTO job_templates (tenant_id, template_id, {", ".join(SETTINGS)})
VALUES ({TENANT}, %(template_id)s, {", ".join(f"%({name})s" for name in SETTINGS)})
ON CONFLICT (tenant_id, template_id) DO NOTHING
RETURNING {DETAIL}
"""
GET = f"SELECT {DETAIL} FROM job_templates WHERE tenant_id = {TENANT} AND template_id = %(template_id)s"
LIST = f"""
SELECT {DETAIL} FROM job_templates
WHERE tenant_id = {TENANT} AND template_id > %(after)s
ORDER BY template_id
LIMIT %(limit)s
"""
DELETE = f"DELETE FROM job_templates WHERE tenant_id = {TENANT} AND template_id = %(template_id)s RETURNING 1"


class TemplateCreate(RequestBody):
    """POST /customer/job-templates."""

    template_id: str = Field(pattern=TEMPLATE_ID_PATTERN)
    document_type: Text = Field(min_length=1, max_length=100)
    document_params: DocumentParams = Field(
        default_factory=dict,
        description="may hold ${aws:iot:parameter:NAME} placeholders (at most 10 names), filled by each job's "
        "document_parameters, and ${aws:iot:s3-presigned-url:https://s3.amazonaws.com/BUCKET/KEY} ones",
    )
    description: Text | None = Field(default=None, max_length=2028)
    timeout_minutes: TimeoutMinutes | None = None
    retry: list[RetryCriterion] | None = Field(default=None, max_length=2)
    rollout: Rollout | None = None
    abort: list[AbortCriterion] | None = Field(default=None, min_length=1, max_length=4)
    presigned_url_config: PresignedUrlConfig | None = None

    @model_validator(mode="after")
    def _criteria(self) -> TemplateCreate:
        one_per_failure_type(self.retry, self.abort)
        return self


class TemplateDetail(Model):
    template_id: str
    document_type: str
    document_params: dict[str, Any]
    parameters: list[str] = Field(description="the names of the document's parameters, which a job must give")
    description: str | None
    timeout_minutes: int | None
    retry: list[dict[str, Any]] | None
    rollout: dict[str, Any] | None
    abort: list[dict[str, Any]] | None
    presigned_url_config: dict[str, Any] | None
    created_at: Timestamp


class TemplateDeleted(Model):
    template_id: str


class TemplatesPage(NamedTuple):
    templates: list[TemplateDetail]
    next_cursor: str | None


def _detail(row: dict[str, Any]) -> TemplateDetail:
    return TemplateDetail(**row, parameters=sorted(documents.parameter_names(row["document_params"])))


def create(db: Database, tenant_id: str, request: TemplateCreate) -> TemplateDetail:
    documents.check_template(request.document_params)
    given = request.model_dump(mode="json", exclude_none=True)
    params: dict[str, Any] = {name: None for name in SETTINGS} | {
        name: Jsonb(value) if isinstance(value, dict | list) else value for name, value in given.items()
    }
    params["document_params"] = Jsonb(request.document_params)
    with db.transaction(tenant_id=tenant_id) as conn:
        row = conn.execute(CREATE, params).fetchone()
    if row is None:
        raise Conflict(f"job template {request.template_id} already exists")
    return _detail(row)


def describe(db: Database, tenant_id: str, template_id: str) -> TemplateDetail:
    with db.transaction(tenant_id=tenant_id) as conn:
        row = conn.execute(GET, {"template_id": template_id}).fetchone()
    if row is None:
        raise NotFound(f"job template {template_id} not found")
    return _detail(row)


def list_templates(db: Database, tenant_id: str, limit: int, cursor: str | None) -> TemplatesPage:
    with db.transaction(tenant_id=tenant_id) as conn:
        rows = conn.execute(LIST, {"after": paging.decode_cursor(cursor), "limit": limit + 1}).fetchall()
    found: list[TemplateDetail] = []
    size = 0
    for row in rows[:limit]:  # a page stops short of about 1 MiB: each template may carry 32 KiB
        size += 600 + len(json.dumps(row["document_params"])) + len(row["description"] or "") * 6
        if found and size > paging.MAX_PAGE_BYTES:
            return TemplatesPage(found, paging.encode_cursor(found[-1].template_id))
        found.append(_detail(row))
    return TemplatesPage(found, paging.encode_cursor(found[-1].template_id) if len(rows) > limit else None)


def delete(db: Database, tenant_id: str, template_id: str) -> TemplateDeleted:
    with db.transaction(tenant_id=tenant_id) as conn:
        row = conn.execute(DELETE, {"template_id": template_id}).fetchone()
    if row is None:
        raise NotFound(f"job template {template_id} not found")
    return TemplateDeleted(template_id=template_id)


class Applied(NamedTuple):
    request: JobCreate  # the job as it is created: the template's settings under the body's
    presign_ttl: int | None  # seconds a presigned URL is valid; None: the document has no placeholder


def applied(db: Database, tenant_id: str, request: JobCreate) -> Applied:
    """The job to create: its template's settings (if it names one) overridden by what the body
    gives, its document's parameters filled; 404 for an unknown template, 422 for parameters
    that do not fit the document or a filled document over the size limit."""
    fields: dict[str, Any] = {}
    if request.template_id is not None:
        fields = {
            name: value
            for name, value in describe(db, tenant_id, request.template_id).model_dump(include=set(SETTINGS)).items()
            if value is not None
        }
    # What the body gives overrides the template, null included (no timeout, no retries...): but a
    # job always has a type, so a null one is the template's.
    given = request.model_dump(exclude_unset=True, exclude={"document_parameters"})
    if given.get("document_type", "") is None:
        del given["document_type"]
    fields |= given
    fields["document_params"] = documents.filled(fields.get("document_params", {}), request.document_parameters or {})
    objects = documents.s3_objects(fields["document_params"])
    if objects and settings().s3_tenant_prefix and any(not o.key.startswith(f"{tenant_id}/") for o in objects):
        raise Unprocessable(
            f"a presigned URL names an object of this tenant's: https://s3.amazonaws.com/BUCKET/{tenant_id}/..."
        )
    try:
        job = JobCreate.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        raise Unprocessable(f"{where or 'job'}: {first.get('msg', 'invalid')}"[:300]) from None
    config = job.presigned_url_config or PresignedUrlConfig()
    return Applied(job, config.expires_in_sec if objects else None)
