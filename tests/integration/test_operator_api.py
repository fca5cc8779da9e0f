"""The operator API through its handlers, with claims as the JWT authorizer passes them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from jobs_core.domain import groups
from jobs_core.store.db import Database
from tests.factories import Admin, CreateJob, Register
from tests.helpers import invoke, operator_claims


def as_operator(tenant: str, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    return invoke(method, path, claims=operator_claims(tenant), **kwargs)


class TestCreate:
    def test_for_one_device(self, tenant: str, register: Register) -> None:
        register(tenant, 3)
        status, body = as_operator(
            tenant,
            "POST",
            "/customer/jobs",
            body={"job_id": "reboot-1", "document_type": "reboot", "target_device_id": "dev-0001"},
        )
        assert status == 201
        assert body["job_id"] == "reboot-1" and body["status"] == "IN_PROGRESS"
        assert body["execution_count"] == 1 and body["expires_at"].endswith("+00:00")

    def test_for_a_group_is_a_snapshot(self, db: Database, tenant: str, register: Register, admin: Admin) -> None:
        register(tenant, 5)
        groups.add_to_group(db, tenant, "lab", ["dev-0000", "dev-0002"])
        status, body = as_operator(
            tenant, "POST", "/customer/jobs", body={"document_type": "ota", "target_group_id": "lab"}
        )
        assert status == 201 and body["execution_count"] == 2
        groups.add_to_group(db, tenant, "lab", ["dev-0004"])  # joins later: not in the job
        targeted = admin.execute(
            "SELECT device_id FROM job_executions WHERE tenant_id = %s ORDER BY device_id", [tenant]
        ).fetchall()
        assert [row["device_id"] for row in targeted] == ["dev-0000", "dev-0002"]

    def test_for_all_devices_of_the_tenant_only(self, tenant: str, other_tenant: str, register: Register) -> None:
        register(tenant, 7)
        register(other_tenant, 4)
        status, body = as_operator(
            tenant,
            "POST",
            "/customer/jobs",
            body={"document_type": "ota", "target_all": True, "expires_in_hours": None},
        )
        assert status == 201
        assert body["execution_count"] == 7 and body["expires_at"] is None
        assert len(body["job_id"]) == 36  # a uuid4 when absent

    def test_a_duplicate_job_id_is_409(self, tenant: str, other_tenant: str, register: Register) -> None:
        register(tenant, 1)
        register(other_tenant, 1)
        job = {"job_id": "same", "document_type": "ota", "target_all": True}
        assert as_operator(tenant, "POST", "/customer/jobs", body=job)[0] == 201
        status, body = as_operator(tenant, "POST", "/customer/jobs", body=job)
        assert (status, body) == (409, {"message": "job same already exists"})
        assert as_operator(other_tenant, "POST", "/customer/jobs", body=job)[0] == 201  # ids are per tenant

    def test_unknown_or_foreign_device_is_404(self, tenant: str, other_tenant: str, register: Register) -> None:
        register(tenant, 1)
        register(other_tenant, 1, prefix="theirs")
        for device in ("nope", "theirs-0000"):
            status, body = as_operator(
                tenant, "POST", "/customer/jobs", body={"document_type": "x", "target_device_id": device}
            )
            assert (status, body) == (404, {"message": f"device {device} not found"})

    def test_empty_group_or_fleet_is_400_an_unknown_group_404_and_neither_creates_anything(
        self, tenant: str, admin: Admin, register: Register
    ) -> None:
        status, body = as_operator(tenant, "POST", "/customer/jobs", body={"document_type": "x", "target_all": True})
        assert (status, body) == (400, {"message": "the tenant has no devices"})
        register(tenant, 1)
        by_group = {"document_type": "x", "target_group_id": "g"}
        assert as_operator(tenant, "POST", "/customer/jobs", body=by_group) == (404, {"message": "group g not found"})
        assert as_operator(tenant, "PUT", "/customer/groups/g")[0] == 201
        assert as_operator(tenant, "POST", "/customer/jobs", body=by_group) == (
            400,
            {"message": "group g has no members"},
        )
        assert admin.execute("SELECT count(*) AS n FROM jobs WHERE tenant_id = %s", [tenant]).fetchone() == {"n": 0}

    @pytest.mark.parametrize(
        "body",
        [
            {"document_type": "x"},
            {"document_type": "x", "target_all": True, "target_device_id": "d"},
            {"document_type": "x", "target_group_id": "g", "target_device_id": "d"},
            {"document_type": "x", "target_all": False},
            {"document_type": "", "target_all": True},
            {"document_type": "x" * 101, "target_all": True},
            {"job_id": "has space", "document_type": "x", "target_all": True},
            {"job_id": "x" * 65, "document_type": "x", "target_all": True},
            {"document_type": "x", "target_all": True, "expires_in_hours": 0},
            {"document_type": "x", "target_all": True, "expires_in_hours": 721},
            {"document_type": "x", "target_all": True, "document_params": {"blob": "x" * 33_000}},
            {"document_type": "x", "target_all": True, "document_params": []},
            {"document_type": "x", "target_all": True, "surprise": 1},
        ],
    )
    def test_invalid_requests_are_422(
        self, tenant: str, register: Register, body: dict[str, Any], admin: Admin
    ) -> None:
        register(tenant, 1)
        status, answer = as_operator(tenant, "POST", "/customer/jobs", body=body)
        assert status == 422 and answer["message"] == "invalid request"
        assert admin.execute("SELECT count(*) AS n FROM jobs WHERE tenant_id = %s", [tenant]).fetchone() == {"n": 0}


class TestList:
    def test_newest_first_with_counts_filter_and_paging(
        self, tenant: str, register: Register, create_job: CreateJob
    ) -> None:
        tokens = register(tenant, 3)
        for i in range(4):
            create_job(tenant, job_id=f"job-{i}")
        invoke("PUT", "/device/v1/jobs/job-3/execution", token=tokens["dev-0000"], body={"status": "IN_PROGRESS"})
        invoke("PUT", "/device/v1/jobs/job-3/execution", token=tokens["dev-0000"], body={"status": "SUCCEEDED"})
        invoke("PUT", "/device/v1/jobs/job-3/execution", token=tokens["dev-0001"], body={"status": "REJECTED"})
        assert as_operator(tenant, "DELETE", "/customer/jobs/job-0")[0] == 200

        status, body = as_operator(tenant, "GET", "/customer/jobs")
        assert status == 200
        assert [job["job_id"] for job in body] == ["job-3", "job-2", "job-1", "job-0"]
        assert {k: body[0][k] for k in ("total_executions", "succeeded_count", "failed_count", "status")} == {
            "total_executions": 3,
            "succeeded_count": 1,
            "failed_count": 1,
            "status": "IN_PROGRESS",
        }
        assert body[0]["created_by"] == "tester"

        canceled = as_operator(tenant, "GET", "/customer/jobs", query="status=CANCELED")[1]
        assert [job["job_id"] for job in canceled] == ["job-0"]
        page = as_operator(tenant, "GET", "/customer/jobs", query="limit=2&offset=1")[1]
        assert [job["job_id"] for job in page] == ["job-2", "job-1"]

    @pytest.mark.parametrize("query", ["status=DONE", "limit=0", "limit=201", "offset=-1", "limit=ten"])
    def test_bad_parameters_are_422(self, tenant: str, query: str) -> None:
        assert as_operator(tenant, "GET", "/customer/jobs", query=query)[0] == 422


class TestDetail:
    def test_pages_executions_with_a_cursor(self, tenant: str, register: Register, create_job: CreateJob) -> None:
        register(tenant, 5)
        create_job(tenant, job_id="j")
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            query = "executions_limit=2" + (f"&cursor={cursor}" if cursor else "")
            status, body = as_operator(tenant, "GET", "/customer/jobs/j", query=query)
            assert status == 200
            pages += 1
            seen += [e["device_id"] for e in body["executions"]]
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert pages == 3
        assert seen == [f"dev-{i:04d}" for i in range(5)]
        assert body["counts"] == {
            "UNRELEASED": 0,
            "QUEUED": 5,
            "IN_PROGRESS": 0,
            "SUCCEEDED": 0,
            "FAILED": 0,
            "REJECTED": 0,
            "TIMED_OUT": 0,
            "CANCELED": 0,
            "REMOVED": 0,
        }
        assert body["total_executions"] == 5 and body["tenant_id"] == tenant

    def test_filters_executions_by_status_and_pages_on(
        self, tenant: str, register: Register, create_job: CreateJob
    ) -> None:
        tokens = register(tenant, 5)
        create_job(tenant, job_id="j")
        for device in ("dev-0001", "dev-0003"):
            assert (
                invoke("PUT", "/device/v1/jobs/j/execution", token=tokens[device], body={"status": "IN_PROGRESS"})[0]
                == 200
            )
        query = "executions_status=QUEUED&executions_limit=2"
        status, first = as_operator(tenant, "GET", "/customer/jobs/j", query=query)
        assert status == 200 and [e["device_id"] for e in first["executions"]] == ["dev-0000", "dev-0002"]
        _, rest = as_operator(tenant, "GET", "/customer/jobs/j", query=f"{query}&cursor={first['next_cursor']}")
        assert [e["device_id"] for e in rest["executions"]] == ["dev-0004"] and rest["next_cursor"] is None
        _, running = as_operator(tenant, "GET", "/customer/jobs/j", query="executions_status=IN_PROGRESS")
        assert [e["device_id"] for e in running["executions"]] == ["dev-0001", "dev-0003"]
        assert running["counts"]["QUEUED"] == 3  # the counts are the job's, whatever the filter
        assert as_operator(tenant, "GET", "/customer/jobs/j", query="executions_status=DONE")[0] == 422

    @pytest.mark.parametrize("query", ["executions_limit=0", "executions_limit=1001", "cursor=%%%"])
    def test_bad_paging_is_4xx(self, tenant: str, register: Register, create_job: CreateJob, query: str) -> None:
        register(tenant, 1)
        create_job(tenant, job_id="j")
        assert as_operator(tenant, "GET", "/customer/jobs/j", query=query)[0] in (400, 422)

    def test_unknown_or_foreign_job_is_404(
        self, tenant: str, other_tenant: str, register: Register, create_job: CreateJob
    ) -> None:
        register(other_tenant, 1)
        create_job(other_tenant, job_id="theirs")
        assert as_operator(tenant, "GET", "/customer/jobs/theirs") == (404, {"message": "job theirs not found"})
        assert as_operator(tenant, "GET", "/customer/jobs/none")[0] == 404


class TestCancel:
    def test_rejects_queued_with_the_reason_and_leaves_running_ones(
        self, tenant: str, register: Register, create_job: CreateJob, admin: Admin
    ) -> None:
        tokens = register(tenant, 3)
        create_job(tenant, job_id="j")
        invoke("PUT", "/device/v1/jobs/j/execution", token=tokens["dev-0000"], body={"status": "IN_PROGRESS"})

        status, body = as_operator(tenant, "DELETE", "/customer/jobs/j", body={"reason": "bad build"})

        assert (status, body) == (200, {"job_id": "j", "status": "CANCELED"})
        rows = admin.execute(
            "SELECT device_id, status, status_details FROM job_executions WHERE tenant_id = %s ORDER BY device_id",
            [tenant],
        ).fetchall()
        assert rows == [
            {"device_id": "dev-0000", "status": "IN_PROGRESS", "status_details": None},
            {"device_id": "dev-0001", "status": "REJECTED", "status_details": {"reason": "bad build"}},
            {"device_id": "dev-0002", "status": "REJECTED", "status_details": {"reason": "bad build"}},
        ]

    def test_default_reason_and_only_once(
        self, tenant: str, register: Register, create_job: CreateJob, admin: Admin
    ) -> None:
        register(tenant, 1)
        create_job(tenant, job_id="j")
        assert as_operator(tenant, "DELETE", "/customer/jobs/j")[0] == 200
        details = admin.execute("SELECT status_details FROM job_executions WHERE tenant_id = %s", [tenant]).fetchone()
        assert details == {"status_details": {"reason": "canceled by operator"}}
        status, body = as_operator(tenant, "DELETE", "/customer/jobs/j")
        assert status == 400 and "CANCELED" in body["message"]

    def test_a_completed_job_cannot_be_canceled(self, tenant: str, register: Register, create_job: CreateJob) -> None:
        token = register(tenant, 1)["dev-0000"]
        create_job(tenant, job_id="j")
        invoke("PUT", "/device/v1/jobs/j/execution", token=token, body={"status": "REJECTED"})
        status, body = as_operator(tenant, "DELETE", "/customer/jobs/j")
        assert status == 400 and "COMPLETED" in body["message"]

    def test_another_tenants_job_is_404_and_untouched(
        self, tenant: str, other_tenant: str, register: Register, create_job: CreateJob, admin: Admin
    ) -> None:
        register(other_tenant, 1)
        create_job(other_tenant, job_id="theirs")
        assert as_operator(tenant, "DELETE", "/customer/jobs/theirs")[0] == 404
        job = admin.execute("SELECT status FROM jobs WHERE tenant_id = %s", [other_tenant]).fetchone()
        assert job == {"status": "IN_PROGRESS"}

    def test_a_bad_body_is_422(self, tenant: str, register: Register, create_job: CreateJob) -> None:
        register(tenant, 1)
        create_job(tenant, job_id="j")
        assert as_operator(tenant, "DELETE", "/customer/jobs/j", body={"reason": "x" * 2000})[0] == 422


class TestOperatorAuth:
    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("POST", "/customer/jobs"),
            ("GET", "/customer/jobs"),
            ("GET", "/customer/jobs/j"),
            ("DELETE", "/customer/jobs/j"),
        ],
    )
    def test_no_claims_is_401_and_no_tenant_claim_is_403(self, method: str, path: str) -> None:
        body = {"document_type": "x", "target_all": True} if method == "POST" else None
        assert invoke(method, path, body=body) == (401, {"message": "missing or unverified credentials"})
        status, answer = invoke(method, path, body=body, claims=operator_claims(None))
        assert (status, answer) == (403, {"message": "the token carries no tenant_id claim"})


def test_a_page_of_executions_stays_under_a_mebibyte(
    tenant: str, register: Register, create_job: CreateJob, admin: Admin
) -> None:
    register(tenant, 300)
    create_job(tenant, job_id="j")
    admin.execute(
        "UPDATE job_executions SET status = 'IN_PROGRESS',"
        " status_details = jsonb_build_object('log', repeat('x', 4000)) WHERE tenant_id = %s",
        [tenant],
    )
    seen, cursor, sizes = 0, None, []
    while True:
        query = "executions_limit=1000" + (f"&cursor={cursor}" if cursor else "")
        status, body = as_operator(tenant, "GET", "/customer/jobs/j", query=query)
        assert status == 200
        sizes.append(len(json.dumps(body)))
        seen += len(body["executions"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == 300 and len(sizes) == 2
    assert max(sizes) < 1024 * 1024
