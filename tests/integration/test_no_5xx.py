"""Any request, with or without credentials, gets a 4xx JSON error or a success: never a 5xx.

Property-based, beside schemathesis (which only sends what the schema describes): raw bodies
(JSON with NaN, Infinity, 1e400, integers past Python's digit limit, deep nesting, bytes that are
not text), content types in any spelling, and claim values of every JSON type, as API Gateway
passes them. The routes come from template.yaml, so a new route is probed as soon as it exists."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobs_core.domain import devices, groups, jobs_create
from jobs_core.domain.job_settings import JobCreate
from jobs_core.store.db import Database
from jobs_local import template
from jobs_local.devjwt import as_api_gateway_claims
from jobs_local.invoke import request

EXAMPLES = 150
seen: Counter[str] = Counter()

ROUTES = template.routes()
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(["IN_PROGRESS", "SUCCEEDED", "FAILED", "REJECTED", "QUEUED", "firmware", "j", "dev-0000"]),
)
JSON_VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
)
FIELDS = st.sampled_from(
    [
        "status",
        "status_details",
        "execution_number",
        "job_id",
        "document_type",
        "document_params",
        "target_device_id",
        "target_group_id",
        "target_all",
        "expires_in_hours",
        "reason",
        # the fleet's
        "device_id",
        "attributes",
        "devices",
        "device_ids",
        "description",
        "previous_valid_minutes",
        "version",
        # AWS IoT Jobs' members (the /iot-jobs-data and /iot routes)
        "statusDetails",
        "expectedVersion",
        "executionNumber",
        "stepTimeoutInMinutes",
        "includeJobExecutionState",
        "targets",
        "document",
        "jobExecutionsRolloutConfig",
        "abortConfig",
        "schedulingConfig",
        "reasonCode",
        "comment",
    ]
)
# What an AWS path's parameters may hold, percent-encoded as botocore sends them (or worse).
GROUPS = st.sampled_from(["lab", "nope", "a%3Ab", "%00", "x" * 200, "%20"])
THINGS = st.sampled_from(["dev-0000", "dev-0001", "a%3Ab", "%00", "x" * 200, "%24next"])
AWS_JOBS = st.sampled_from(["j", "nope", "$next", "%24next", "%00", "x" * 65])
PROXIES = st.sampled_from(["thing-groups", "jobs/j/extra/path", "command-executions", "%00", "things"])
METHODS = st.sampled_from(["GET", "PUT", "POST", "DELETE", "PATCH"])
# Numbers JSON does not have, or Python cannot read, spliced into otherwise plausible bodies.
HOSTILE_NUMBERS = st.sampled_from(["NaN", "-Infinity", "Infinity", "1e400", "-1e400", "1" * 5000, "1e-400"])


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["object", "hostile", "bytes", "deep", "empty"]))
    if kind == "object":
        return json.dumps(draw(st.dictionaries(FIELDS, JSON_VALUES, max_size=5))).encode()
    if kind == "hostile":
        field = draw(FIELDS)
        number = draw(HOSTILE_NUMBERS)
        where = draw(st.sampled_from(['{"%s": %s}', '{"status": "IN_PROGRESS", "%s": {"k": [%s]}}']))
        return (where % (field, number)).encode()
    if kind == "deep":
        depth = draw(st.integers(min_value=30, max_value=3000))
        return b'{"status_details": ' + b"[" * depth + b"]" * depth + b"}"
    if kind == "bytes":
        return draw(st.binary(max_size=64))
    return b""


CONTENT_TYPES = st.one_of(
    st.sampled_from(
        [
            "application/json",
            "APPLICATION/JSON",
            "Application/Json",
            "application/vnd.api+json",
            "application/json; charset=utf-8",
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "multipart/form-data",
            "",
        ]
    ),
    st.text(max_size=30),
)
CLAIM_VALUES = st.one_of(
    JSON_VALUES,
    st.sampled_from(["", "\x00", "a\x00b", "\ud800", "x" * 300, "tenant with spaces", "[a b]"]),
)


@st.composite
def claims(draw: st.DrawFn, tenant: str) -> dict[str, str] | None:
    kind = draw(st.sampled_from(["none", "valid", "odd tenant", "odd sub", "odd both"]))
    if kind == "none":
        return None
    raw: dict[str, Any] = {"sub": "fuzzer", "tenant_id": tenant}
    if kind in ("odd tenant", "odd both"):
        raw["tenant_id"] = draw(CLAIM_VALUES)
    if kind in ("odd sub", "odd both"):
        raw["sub"] = draw(CLAIM_VALUES)
    return as_api_gateway_claims(raw)


def path_for(route: template.Route, job_id: str, data: st.DataObject) -> str:
    path = route.path.replace("{job_id}", job_id).replace("{device_id}", "dev-0000")
    for name, values in (("{group_id}", GROUPS), ("{thingName}", THINGS), ("{jobId}", AWS_JOBS), ("{proxy+}", PROXIES)):
        if name in path:
            path = path.replace(name, data.draw(values, label=name))
    return path


@pytest.fixture(scope="module")
def world(database_url: str) -> Iterator[dict[str, str]]:
    """A tenant with a device (whose token the requests may carry) and a job j for it."""
    db = Database(lambda refresh: database_url)
    tenant = f"fuzz-{uuid.uuid4().hex[:8]}"
    token = devices.register(db, tenant, ["dev-0000"])["dev-0000"]
    jobs_create.create(db, tenant, "fuzzer", JobCreate(job_id="j", document_type="x", target_all=True))
    groups.add_to_group(db, tenant, "lab", ["dev-0000"])
    db.close()
    yield {"tenant": tenant, "token": token}
    print(f"\nno-5xx: {sum(seen.values())} generated requests, by status {dict(sorted(seen.items()))}")


@pytest.mark.parametrize("route", ROUTES, ids=[r.route_key for r in ROUTES])
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(data=st.data())
def test_no_request_gets_a_5xx(route: template.Route, data: st.DataObject, world: dict[str, str]) -> None:
    job_id = data.draw(st.sampled_from(["j", "nope", "x" * 64]), label="job_id")
    body = data.draw(bodies(), label="body")
    headers = {"content-type": data.draw(CONTENT_TYPES, label="content-type")}
    token = data.draw(st.sampled_from([world["token"], "", "not-a-token", "\x00"]), label="token")
    if token:
        headers["x-provision-token"] = token
    sent = request(
        data.draw(METHODS, label="method") if route.method == "ANY" else route.method,
        path_for(route, job_id, data),
        headers=headers,
        body=body,
        claims=data.draw(claims(world["tenant"]), label="claims") if route.authorized else None,
        among=ROUTES,
    )

    reply = sent.send()

    seen[f"{reply.status // 100}xx"] += 1
    assert reply.status < 500, (reply.status, reply.body[:500], body[:200], headers)
    content_type = {k.lower(): v for k, v in reply.headers.items()}.get("content-type", "")
    if reply.status < 400 and content_type.startswith(("text/html", "text/css", "text/javascript")):
        return  # the console's page and files
    answer = json.loads(reply.body) if reply.body else None
    if reply.status >= 400:
        assert isinstance(answer, dict) and isinstance(answer.get("message"), str), reply.body[:200]
        assert len(reply.body) < 4096  # an error never carries the input back
