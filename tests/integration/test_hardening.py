"""Classes of defect found by probing from outside, each closed at its root: wire types are
strict, claims are checked, errors never echo input, responses fit Lambda's 6 MB whatever the
data, the body and document limits agree, deep pages are cheap and exact, and no row can stop
the sweep."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from jobs_core.domain.models import MAX_DOCUMENT_PARAMS_BYTES
from jobs_core.domain.sweep import DUE, sweep
from jobs_core.native.http import MAX_BODY_BYTES
from jobs_core.store.db import Database
from jobs_local.devjwt import as_api_gateway_claims
from jobs_local.invoke import request
from tests.factories import Admin, CreateJob, Register, expire_job, job_status
from tests.helpers import device_put, invoke, operator_claims

LAMBDA_RESPONSE_LIMIT = 6 * 1024 * 1024


def as_operator(tenant: str, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    return invoke(method, path, claims=operator_claims(tenant), **kwargs)


class TestStrictWireTypes:
    @pytest.mark.parametrize("number", ["1", 1.0, True])
    def test_an_execution_number_is_an_integer(
        self, number: Any, tenant: str, register: Register, create_job: CreateJob
    ) -> None:
        token = register(tenant, 1)["dev-0000"]
        create_job(tenant, job_id="j")
        status, body = device_put("j", token, body={"status": "IN_PROGRESS", "execution_number": number})
        assert status == 422, body

    @pytest.mark.parametrize(
        "fields",
        [
            {"target_all": True, "expires_in_hours": "24"},
            {"target_all": True, "expires_in_hours": True},
            {"target_all": "yes"},
            {"target_all": 1},
            {"target_device_id": 7},
        ],
    )
    def test_create_takes_the_types_openapi_states(
        self, fields: dict[str, Any], tenant: str, register: Register
    ) -> None:
        register(tenant, 1)
        status, body = as_operator(tenant, "POST", "/customer/jobs", body={"document_type": "x", **fields})
        assert status == 422, body


class TestClaims:
    @pytest.mark.parametrize(
        "tenant_claim",
        [None, ["a", "b"], {"t": 1}, "", "a\x00b", "\ud800", "x" * 129, "has space", "-leading"],
        ids=["null", "list", "object", "empty", "nul", "surrogate", "long", "space", "dash"],
    )
    def test_a_tenant_claim_that_is_not_a_tenant_id_is_403(self, tenant_claim: Any) -> None:
        claims = as_api_gateway_claims({"sub": "alice", "tenant_id": tenant_claim})
        status, body = invoke("GET", "/customer/jobs", claims=claims)
        assert status == 403, body
        assert body["message"] in (
            "the token carries no tenant_id claim",
            "the token's tenant_id claim is not a tenant id",
        )

    @pytest.mark.parametrize("sub", ["a\x00b", "\ud800", "x" * 300, ""])
    def test_a_sub_that_is_not_printable_text_is_403(self, sub: str, tenant: str) -> None:
        status, body = invoke("GET", "/customer/jobs", claims=as_api_gateway_claims({"sub": sub, "tenant_id": tenant}))
        assert status == 403, body

    def test_a_number_claim_is_the_string_api_gateway_makes_of_it(self) -> None:
        status, body = invoke("GET", "/customer/jobs", claims=as_api_gateway_claims({"sub": "a", "tenant_id": 12}))
        assert (status, body) == (200, [])  # tenant "12", as API Gateway passes it

    def test_claims_reach_the_handler_as_api_gateway_formats_them(self) -> None:
        assert as_api_gateway_claims({"a": [1, "x"], "b": True, "c": None, "d": {"k": 2}, "e": 3}) == {
            "a": "[1 x]",
            "b": "true",
            "d": "map[k:2]",
            "e": "3",
        }


def test_a_422_never_echoes_more_than_an_excerpt(tenant: str, register: Register, create_job: CreateJob) -> None:
    token = register(tenant, 1)["dev-0000"]
    create_job(tenant, job_id="j")
    key = "k" * 60_000
    status, body = invoke("PUT", "/device/v1/jobs/j/execution", token=token, body={"status": "IN_PROGRESS", key: 1})
    assert status == 422
    assert len(json.dumps(body)) < 2000 and key not in json.dumps(body)
    many = {f"field{i}": i for i in range(500)}
    status, body = invoke("PUT", "/device/v1/jobs/j/execution", token=token, body={"status": "IN_PROGRESS", **many})
    assert status == 422 and len(body["details"]) <= 10


def canonical_size(value: Any) -> int:
    """What the document limit measures: compact JSON, as UTF-8."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def worst_document(units: str) -> dict[str, str]:
    """document_params at the 32 KiB limit, of characters whose escaped JSON is largest."""
    per = canonical_size(units) - 2
    return {"b": units * ((MAX_DOCUMENT_PARAMS_BYTES - canonical_size({"b": ""})) // per)}


class TestLimitsAgree:
    @pytest.mark.parametrize("units", ["\x01", "é", "€", "😀"], ids=["control", "2-byte", "3-byte", "4-byte"])
    def test_the_largest_document_is_accepted_however_it_is_escaped(
        self, units: str, tenant: str, register: Register
    ) -> None:
        register(tenant, 1)
        raw = json.dumps({"document_type": "x", "target_all": True, "document_params": worst_document(units)})
        assert len(raw.encode()) <= MAX_BODY_BYTES
        status, body = as_operator(tenant, "POST", "/customer/jobs", raw_body=raw.encode())
        assert status == 201, body

    def test_a_24_kib_non_ascii_document_sent_escaped_is_accepted(self, tenant: str, register: Register) -> None:
        register(tenant, 1)
        job = {"document_type": "x", "target_all": True, "document_params": {"t": "ü" * (12 * 1024)}}
        status, body = as_operator(tenant, "POST", "/customer/jobs", raw_body=json.dumps(job).encode())
        assert status == 201, body

    def test_one_byte_over_the_document_limit_is_still_422(self, tenant: str, register: Register) -> None:
        register(tenant, 1)
        params = worst_document("x")
        params["b"] += "x" * (MAX_DOCUMENT_PARAMS_BYTES - canonical_size(params) + 1)
        status, _ = as_operator(
            tenant, "POST", "/customer/jobs", body={"document_type": "x", "target_all": True, "document_params": params}
        )
        assert status == 422


class TestResponsesFit:
    def test_listing_200_jobs_of_the_largest_documents_pages_under_the_limit(
        self, tenant: str, register: Register, create_job: CreateJob
    ) -> None:
        register(tenant, 1)
        document = worst_document("😀")  # 3x its size once escaped, as the responses are
        for i in range(200):
            create_job(tenant, job_id=f"big-{i:03d}", document_params=document)
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            query = "limit=200" + (f"&cursor={cursor}" if cursor else "")
            reply = request("GET", f"/customer/jobs?{query}", claims=operator_claims(tenant)).send()
            assert reply.status == 200 and len(reply.body) < LAMBDA_RESPONSE_LIMIT
            seen += [job["job_id"] for job in json.loads(reply.body)]
            pages += 1
            cursor = reply.headers.get("X-Next-Cursor")
            if not cursor:
                break
        assert pages > 1
        assert seen == [f"big-{i:03d}" for i in reversed(range(200))]

    def test_pending_and_describe_of_the_largest_documents_fit(
        self, tenant: str, register: Register, create_job: CreateJob
    ) -> None:
        token = register(tenant, 1)["dev-0000"]
        for i in range(12):
            create_job(tenant, job_id=f"big-{i}", document_params=worst_document("\x01"))
        for path in ("/device/v1/jobs/pending", "/device/v1/jobs/big-0/execution"):
            reply = request("GET", path, headers={"x-provision-token": token}).send()
            assert reply.status == 200 and len(reply.body) < LAMBDA_RESPONSE_LIMIT


class TestListing:
    def test_cursor_and_offset_page_the_same_order(
        self, tenant: str, register: Register, create_job: CreateJob, admin: Admin
    ) -> None:
        register(tenant, 1)
        for i in range(7):
            create_job(tenant, job_id=f"job-{i}")
        admin.execute("UPDATE jobs SET created_at = '2026-01-01T00:00:00Z' WHERE tenant_id = %s", [tenant])  # ties
        everything = [j["job_id"] for j in as_operator(tenant, "GET", "/customer/jobs")[1]]
        assert everything == [f"job-{i}" for i in reversed(range(7))]  # ties broken by job_id, descending
        by_cursor: list[str] = []
        cursor = None
        while True:
            reply = request(
                "GET", f"/customer/jobs?limit=3{'&cursor=' + cursor if cursor else ''}", claims=operator_claims(tenant)
            ).send()
            by_cursor += [j["job_id"] for j in json.loads(reply.body)]
            cursor = reply.headers.get("X-Next-Cursor")
            if not cursor:
                break
        by_offset = [
            j["job_id"]
            for k in range(3)
            for j in as_operator(tenant, "GET", "/customer/jobs", query=f"limit=3&offset={3 * k}")[1]
        ]
        assert by_cursor == by_offset == everything

    @pytest.mark.parametrize(
        "cursor",
        [
            "%%%",
            base64.urlsafe_b64encode(b'["x", "j"]').decode(),
            base64.urlsafe_b64encode(b'["2026-01-01", "a\\u0000"]').decode(),
        ],
    )
    def test_a_cursor_we_did_not_issue_is_400(self, cursor: str, tenant: str) -> None:
        assert as_operator(tenant, "GET", "/customer/jobs", query=f"cursor={cursor}")[0] == 400

    def test_the_page_reads_its_jobs_by_an_index_in_order(self, admin: Admin, tenant: str) -> None:
        from jobs_core.domain.jobs_read import _list_query

        for by_status in (False, True):
            query = _list_query(by_status, True).as_string(None)
            params = {
                "status": "IN_PROGRESS",
                "limit": 50,
                "offset": 0,
                "after_created_at": "2026-01-01T00:00:00Z",
                "after_job_id": "x",
            }
            with admin.transaction():
                admin.execute("SELECT set_config('jobs.tenant_id', %s, true)", [tenant])
                admin.execute("SET LOCAL enable_seqscan = off")
                plan = json.dumps(admin.execute("EXPLAIN (FORMAT JSON) " + query, params).fetchall())
            assert "newest_first" in plan and '"Sort"' not in plan.split('"Limit"', 1)[1].split("Counts", 1)[0]


class TestSweepCannotBeStopped:
    def test_a_row_that_cannot_be_timed_out_stops_only_itself(
        self, db: Database, tenant: str, register: Register, create_job: CreateJob, admin: Admin
    ) -> None:
        register(tenant, 30)
        create_job(tenant, job_id="j")
        admin.execute(
            "UPDATE job_executions SET execution_number = 9223372036854775807"  # bigint's maximum: +1 overflows
            " WHERE tenant_id = %s AND device_id = 'dev-0007'",
            [tenant],
        )
        expire_job(admin, tenant, "j")

        try:
            first = sweep(db, batch_size=8)
            again = sweep(db, batch_size=8)
            rows = admin.execute(
                "SELECT device_id, status FROM job_executions WHERE tenant_id = %s ORDER BY device_id", [tenant]
            ).fetchall()
            status = job_status(admin, tenant, "j")
        finally:  # the sweep is global: leave no row it cannot time out to the other tests
            admin.execute("DELETE FROM jobs WHERE tenant_id = %s", [tenant])

        assert {r["device_id"]: r["status"] for r in rows if r["status"] != "TIMED_OUT"} == {"dev-0007": "QUEUED"}
        assert first.timed_out >= 29 and first.failed == 1 and again.failed == 1
        assert status == "IN_PROGRESS"  # one execution is still active

    def test_with_nothing_due_the_sweep_reads_the_due_index_only(self, admin: Admin) -> None:
        with admin.transaction():
            admin.execute("SET LOCAL ROLE jobs_sweeper")
            plan = json.dumps(
                admin.execute(
                    "EXPLAIN (FORMAT JSON) " + DUE.as_string(None), {"now": None, "batch_size": 10, "skip": []}
                ).fetchall()
            )
        assert "job_executions_due" in plan and "Seq Scan" not in plan


def test_a_full_last_page_has_no_next_cursor(tenant: str, register: Register, create_job: CreateJob) -> None:
    register(tenant, 1)
    for i in range(4):
        create_job(tenant, job_id=f"job-{i}")
    first = request("GET", "/customer/jobs?limit=2", claims=operator_claims(tenant)).send()
    cursor = first.headers["X-Next-Cursor"]
    last = request("GET", f"/customer/jobs?limit=2&cursor={cursor}", claims=operator_claims(tenant)).send()
    assert [j["job_id"] for j in json.loads(last.body)] == ["job-1", "job-0"]
    assert "X-Next-Cursor" not in last.headers
