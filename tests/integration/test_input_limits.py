"""Bad input gets a clear 4xx and changes nothing: limits, nesting, NUL bytes, broken text."""

from __future__ import annotations

import json
import tracemalloc

import pytest

from jobs_core.native.http import MAX_BODY_BYTES
from tests.factories import Admin, CreateJob, Register
from tests.helpers import device_put, invoke, operator_claims


def put_raw(token: str, raw: bytes) -> tuple[int, object]:
    return invoke("PUT", "/device/v1/jobs/j/execution", token=token, raw_body=raw)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"status": "IN_PROGRESS", "status_details": {"k": "a\\u0000b"}}',
        b'{"status": "IN_PROGRESS", "status_details": {"a\\u0000": 1}}',
        b'{"status": "IN_PROGRESS", "status_details": {"k": "\\ud800"}}',
        b'{"status": "IN_PROGRESS", "status_details": ' + b'{"a": ' * 40 + b"1" + b"}" * 40 + b"}",
        b'{"status": "IN_PROGRESS", "status_details": {"a": ' + b"[" * 20_000 + b"]" * 20_000 + b"}}",
        b'{"status": "IN_PROGRESS", "status_details": {"log": "' + b"x" * 4200 + b'"}}',
        b"\xc3\x28",
        b'{"status": "IN_PROGRESS\x00"}',
    ],
    ids=["nul-value", "nul-key", "lone-surrogate", "40-deep", "20k-deep", "over-4KiB", "bad-utf8", "nul-status"],
)
def test_device_bodies_that_cannot_be_stored_are_422(
    raw: bytes, tenant: str, register: Register, create_job: CreateJob, admin: Admin
) -> None:
    token = register(tenant, 1)["dev-0000"]
    create_job(tenant, job_id="j")
    before = admin.execute("SELECT * FROM job_executions WHERE tenant_id = %s", [tenant]).fetchall()

    status, body = put_raw(token, raw)

    assert status == 422, body
    assert admin.execute("SELECT * FROM job_executions WHERE tenant_id = %s", [tenant]).fetchall() == before


@pytest.mark.parametrize(
    "job",
    [
        {"document_type": "a\x00b", "target_all": True},
        {"document_type": "x", "target_device_id": "dev\x00", "target_all": False},
        {"document_type": "x", "target_all": True, "document_params": {"k": "\ud800"}},
        {"document_type": "x", "target_all": True, "document_params": {"blob": "y" * (33 * 1024)}},
    ],
    ids=["nul-type", "nul-device", "surrogate-param", "params-over-32KiB"],
)
def test_operator_bodies_that_cannot_be_stored_are_422(job: dict[str, object], tenant: str, register: Register) -> None:
    register(tenant, 1)
    raw = json.dumps(job).encode("utf-8", "surrogatepass")
    status, body = invoke("POST", "/customer/jobs", claims=operator_claims(tenant), raw_body=raw)
    assert status == 422, body


def test_a_cursor_hiding_a_nul_is_400(tenant: str, register: Register, create_job: CreateJob) -> None:
    register(tenant, 1)
    create_job(tenant, job_id="j")
    status, _ = invoke("GET", "/customer/jobs/j", claims=operator_claims(tenant), query="cursor=AA")
    assert status == 400


@pytest.mark.parametrize("token", ["\x00", "tok\udcff", "ünïcode"])
def test_tokens_that_are_not_tokens_are_401(token: str) -> None:
    assert invoke("GET", "/device/v1/jobs/pending", token=token)[0] == 401


def test_a_huge_nested_body_costs_bounded_memory(tenant: str, register: Register, create_job: CreateJob) -> None:
    token = register(tenant, 1)["dev-0000"]
    create_job(tenant, job_id="j")
    raw = b'{"status": "IN_PROGRESS", "status_details": {"a": ' + b"[" * 2_000_000 + b"]" * 2_000_000 + b"}}"
    tracemalloc.start()
    status, _ = put_raw(token, raw)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert status == 413  # refused by its size, before any parsing
    assert peak < 64 * 1024 * 1024, peak


@pytest.mark.parametrize("content_type", ["text/plain", "multipart/form-data", "application/x-www-form-urlencoded"])
def test_bodies_that_are_not_json_are_415(
    content_type: str, tenant: str, register: Register, create_job: CreateJob
) -> None:
    token = register(tenant, 1)["dev-0000"]
    create_job(tenant, job_id="j")
    status, body = device_put("j", token, raw_body=b'{"status": "IN_PROGRESS"}', headers={"content-type": content_type})
    assert (status, body) == (415, {"message": "send the body as application/json"})
    accepted = invoke(
        "PUT",
        "/device/v1/jobs/j/execution",
        token=token,
        raw_body=b'{"status": "IN_PROGRESS"}',
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert accepted[0] == 200


def test_a_body_over_the_limit_is_413_before_parsing(tenant: str, register: Register, create_job: CreateJob) -> None:
    token = register(tenant, 1)["dev-0000"]
    create_job(tenant, job_id="j")
    huge = b'{"status": "IN_PROGRESS", "status_details": {"x": "' + b"y" * MAX_BODY_BYTES + b'"}}'
    status, body = invoke("PUT", "/device/v1/jobs/j/execution", token=token, raw_body=huge)
    assert (status, body) == (413, {"message": f"a body is at most {MAX_BODY_BYTES} bytes"})
