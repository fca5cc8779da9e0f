"""The device API through its handlers, on real PostgreSQL: every transition of the table,
refusals that change nothing, and what a device may never see."""

from __future__ import annotations

from typing import Any

import pytest

from jobs_core.domain.statemachine import HIDDEN_FROM_DEVICES, TRANSITIONS, Actor, ExecutionStatus, allowed
from tests.factories import Admin, CreateJob, Register, execution_row, expire_job, force_status
from tests.helpers import hintless, invoke


def put(job_id: str, token: str, **body: Any) -> tuple[int, Any]:
    return invoke("PUT", f"/device/v1/jobs/{job_id}/execution", token=token, body=body)


class TestPending:
    def test_lists_queued_executions_oldest_first_at_most_ten(
        self, tenant: str, register: Register, create_job: CreateJob
    ) -> None:
        tokens = register(tenant, 1)
        created = [create_job(tenant, job_id=f"job-{i:02d}").job_id for i in range(12)]

        status, body = invoke("GET", "/device/v1/jobs/pending", token=tokens["dev-0000"])

        assert status == 200
        assert [job["job_id"] for job in body["jobs"]] == created[:10]
        first = body["jobs"][0]
        assert first["execution_number"] == 1
        assert first["document"] == {"type": "firmware", "params": {}}
        assert first["queued_at"].endswith("+00:00") and first["expires_at"].endswith("+00:00")

    def test_leaves_out_expired_canceled_and_claimed(
        self, tenant: str, register: Register, create_job: CreateJob, admin: Admin
    ) -> None:
        tokens = register(tenant, 1)
        token = tokens["dev-0000"]
        create_job(tenant, job_id="expired")
        expire_job(admin, tenant)
        create_job(tenant, job_id="canceled")
        assert invoke("DELETE", "/customer/jobs/canceled", claims={"tenant_id": tenant, "sub": "a"})[0] == 200
        create_job(tenant, job_id="claimed")
        assert put("claimed", token, status="IN_PROGRESS")[0] == 200
        create_job(tenant, job_id="forever", expires_in_hours=None)

        status, body = invoke("GET", "/device/v1/jobs/pending", token=token)

        assert status == 200
        assert [job["job_id"] for job in body["jobs"]] == ["forever"]
        assert body["jobs"][0]["expires_at"] is None

    def test_sees_only_its_own_executions(
        self, tenant: str, other_tenant: str, register: Register, create_job: CreateJob
    ) -> None:
        mine = register(tenant, 2)
        register(other_tenant, 1)
        create_job(tenant, job_id="for-0001", target_device_id="dev-0001")
        create_job(other_tenant, job_id="foreign")

        status, body = invoke("GET", "/device/v1/jobs/pending", token=mine["dev-0000"])

        assert status == 200
        assert hintless(body) == {"jobs": []}


class TestAuthentication:
    @pytest.mark.parametrize(
        ("method", "path", "body"),
        [
            ("GET", "/device/v1/jobs/pending", None),
            ("GET", "/device/v1/jobs/j1/execution", None),
            ("PUT", "/device/v1/jobs/j1/execution", {"status": "IN_PROGRESS"}),
        ],
    )
    @pytest.mark.parametrize("token", [None, "", "not-a-token", "x" * 5000])
    def test_missing_or_unknown_token_is_401(self, method: str, path: str, body: Any, token: str | None) -> None:
        status, answer = invoke(method, path, token=token, body=body)
        assert status == 401
        assert answer == {"message": "missing or unknown provision token"}

    def test_tokens_are_stored_only_as_hashes(self, tenant: str, register: Register, admin: Admin) -> None:
        tokens = register(tenant, 3)
        stored = admin.execute("SELECT * FROM device_state WHERE tenant_id = %s", [tenant]).fetchall()
        dump = repr(stored)
        assert stored and all(token not in dump for token in tokens.values())


class TestDescribe:
    def test_returns_the_execution_with_its_document(
        self, tenant: str, register: Register, create_job: CreateJob
    ) -> None:
        token = register(tenant, 1)["dev-0000"]
        create_job(tenant, job_id="fw", document_params={"url": "https://x/fw.bin", "size": 3})

        status, body = invoke("GET", "/device/v1/jobs/fw/execution", token=token)

        assert status == 200
        assert body["job_id"] == "fw" and body["device_id"] == "dev-0000"
        assert body["status"] == "QUEUED" and body["execution_number"] == 1
        assert body["document"] == {"type": "firmware", "params": {"url": "https://x/fw.bin", "size": 3}}
        assert body["started_at"] is None and body["status_details"] is None

    def test_another_devices_or_tenants_execution_is_404(
        self, tenant: str, other_tenant: str, register: Register, create_job: CreateJob
    ) -> None:
        mine = register(tenant, 2)
        theirs = register(other_tenant, 1)
        create_job(tenant, job_id="only-1", target_device_id="dev-0001")
        create_job(other_tenant, job_id="theirs")

        assert invoke("GET", "/device/v1/jobs/only-1/execution", token=mine["dev-0000"])[0] == 404
        assert invoke("GET", "/device/v1/jobs/theirs/execution", token=mine["dev-0000"])[0] == 404
        assert invoke("GET", "/device/v1/jobs/only-1/execution", token=theirs["dev-0000"])[0] == 404

    def test_a_malformed_job_id_is_422(self, tenant: str, register: Register) -> None:
        token = register(tenant, 1)["dev-0000"]
        assert invoke("GET", "/device/v1/jobs/bad%20id!/execution", token=token)[0] == 422


DEVICE_TRANSITIONS = sorted((t.source, t.target) for t in TRANSITIONS if t.actor is Actor.DEVICE and t.retry_of is None)
NOT_ALLOWED = sorted(
    (frm, to)
    for frm in ExecutionStatus
    for to in ("IN_PROGRESS", "SUCCEEDED", "FAILED", "REJECTED")
    if frm not in (ExecutionStatus.TIMED_OUT, ExecutionStatus.CANCELED, *HIDDEN_FROM_DEVICES)
    and not allowed(frm, ExecutionStatus(to), Actor.DEVICE)
)


class TestTransitions:
    @pytest.mark.parametrize(("source", "target"), DEVICE_TRANSITIONS)
    def test_every_device_transition_in_the_table(
        self,
        source: ExecutionStatus,
        target: ExecutionStatus,
        tenant: str,
        register: Register,
        create_job: CreateJob,
        admin: Admin,
    ) -> None:
        token = register(tenant, 1)["dev-0000"]
        create_job(tenant, job_id="j")
        force_status(admin, tenant, "j", "dev-0000", source)
        before = execution_row(admin, tenant, "j", "dev-0000")

        status, body = put("j", token, status=str(target), execution_number=before["execution_number"])

        assert status == 200, body
        after = execution_row(admin, tenant, "j", "dev-0000")
        assert body == {
            "job_id": "j",
            "device_id": "dev-0000",
            "status": str(target),
            "execution_number": before["execution_number"] + 1,
            "attempt": 1,
            "timeout_at": None,
            "approximate_seconds_before_timed_out": None,
        }
        assert after["status"] == target and after["execution_number"] == before["execution_number"] + 1
        if source is ExecutionStatus.QUEUED and target is ExecutionStatus.IN_PROGRESS:
            assert after["started_at"] is not None
        else:
            assert after["started_at"] == before["started_at"]

    @pytest.mark.parametrize(("source", "target"), NOT_ALLOWED)
    def test_transitions_not_in_the_table_are_400_and_change_nothing(
        self, source: ExecutionStatus, target: str, tenant: str, register: Register, create_job: CreateJob, admin: Admin
    ) -> None:
        token = register(tenant, 1)["dev-0000"]
        create_job(tenant, job_id="j")
        force_status(admin, tenant, "j", "dev-0000", source)
        before = execution_row(admin, tenant, "j", "dev-0000")

        status, body = put("j", token, status=target, execution_number=before["execution_number"])

        assert status == 400
        assert body["message"] == f"cannot move an execution from {source} to {target}"
        assert execution_row(admin, tenant, "j", "dev-0000") == before

    def test_timed_out_is_final_too(self, tenant: str, register: Register, create_job: CreateJob, admin: Admin) -> None:
        token = register(tenant, 1)["dev-0000"]
        create_job(tenant, job_id="j")
        admin.execute("UPDATE job_executions SET status = 'TIMED_OUT' WHERE tenant_id = %s", [tenant])
        for target in ("IN_PROGRESS", "SUCCEEDED", "FAILED", "REJECTED"):
            assert put("j", token, status=target)[0] == 400

    def test_a_device_cannot_time_out_or_queue(self, tenant: str, register: Register, create_job: CreateJob) -> None:
        token = register(tenant, 1)["dev-0000"]
        create_job(tenant, job_id="j")
        for target in ("TIMED_OUT", "QUEUED", "DONE"):
            status, body = put("j", token, status=target)
            assert status == 422 and body["message"] == "invalid request"

    def test_a_full_session_bumps_the_version_each_time(
        self, tenant: str, register: Register, create_job: CreateJob
    ) -> None:
        token = register(tenant, 1)["dev-0000"]
        create_job(tenant, job_id="j")
        assert put("j", token, status="IN_PROGRESS", execution_number=1)[1]["execution_number"] == 2
        assert put("j", token, status="IN_PROGRESS", status_details={"pct": 50}, execution_number=2)[0] == 200
        status, body = put("j", token, status="SUCCEEDED", execution_number=3)
        assert (status, body["execution_number"]) == (200, 4)
        final = invoke("GET", "/device/v1/jobs/j/execution", token=token)[1]
        assert final["status"] == "SUCCEEDED"
        assert final["status_details"] == {"pct": 50}  # kept when an update sends none

    def test_a_stale_execution_number_is_409_and_changes_nothing(
        self, tenant: str, register: Register, create_job: CreateJob, admin: Admin
    ) -> None:
        token = register(tenant, 1)["dev-0000"]
        create_job(tenant, job_id="j")
        assert put("j", token, status="IN_PROGRESS", execution_number=1)[0] == 200
        before = execution_row(admin, tenant, "j", "dev-0000")

        status, body = put("j", token, status="SUCCEEDED", execution_number=1)

        assert status == 409
        assert "stale" in body["message"]
        assert execution_row(admin, tenant, "j", "dev-0000") == before

    def test_claiming_an_expired_or_canceled_job_is_400(
        self, tenant: str, register: Register, create_job: CreateJob, admin: Admin
    ) -> None:
        token = register(tenant, 1)["dev-0000"]
        create_job(tenant, job_id="expired")
        expire_job(admin, tenant)

        status, body = put("expired", token, status="IN_PROGRESS")

        assert status == 400 and "cannot be claimed" in body["message"]
        assert execution_row(admin, tenant, "expired", "dev-0000")["status"] == "QUEUED"

    def test_finishing_after_the_job_was_canceled_is_allowed(
        self, tenant: str, register: Register, create_job: CreateJob
    ) -> None:
        token = register(tenant, 1)["dev-0000"]
        create_job(tenant, job_id="j")
        assert put("j", token, status="IN_PROGRESS")[0] == 200
        assert invoke("DELETE", "/customer/jobs/j", claims={"tenant_id": tenant, "sub": "a"})[0] == 200

        assert put("j", token, status="SUCCEEDED")[0] == 200
        job = invoke("GET", "/customer/jobs/j", claims={"tenant_id": tenant, "sub": "a"})[1]
        assert job["status"] == "CANCELED"  # never turned into COMPLETED

    def test_updating_someone_elses_execution_is_404(
        self, tenant: str, other_tenant: str, register: Register, create_job: CreateJob, admin: Admin
    ) -> None:
        mine = register(tenant, 2)
        theirs = register(other_tenant, 1)
        create_job(tenant, job_id="j", target_device_id="dev-0001")
        before = execution_row(admin, tenant, "j", "dev-0001")

        assert put("j", mine["dev-0000"], status="IN_PROGRESS")[0] == 404
        assert put("j", theirs["dev-0000"], status="IN_PROGRESS")[0] == 404
        assert execution_row(admin, tenant, "j", "dev-0001") == before


class TestMalformedBodies:
    @pytest.mark.parametrize(
        "body",
        [
            b"",
            b"not json",
            b"[]",
            b'{"status": "IN_PROGRESS", "extra": 1}',
            b'{"status": "IN_PROGRESS", "execution_number": 0}',
            b'{"status": "IN_PROGRESS", "execution_number": "one"}',
            b'{"status": "IN_PROGRESS", "status_details": "text"}',
            b'{"status": "IN_PROGRESS", "status_details": {"log": "' + b"x" * 5000 + b'"}}',
            b"\xff\xfe\x00",
        ],
    )
    def test_malformed_bodies_are_422_and_change_nothing(
        self, body: bytes, tenant: str, register: Register, create_job: CreateJob, admin: Admin
    ) -> None:
        token = register(tenant, 1)["dev-0000"]
        create_job(tenant, job_id="j")
        before = execution_row(admin, tenant, "j", "dev-0000")

        status, answer = invoke("PUT", "/device/v1/jobs/j/execution", token=token, raw_body=body)

        assert status == 422, answer
        assert answer["message"] == "invalid request"
        assert "Traceback" not in repr(answer)
        assert execution_row(admin, tenant, "j", "dev-0000") == before


def test_job_completes_when_its_last_execution_finishes(
    tenant: str, register: Register, create_job: CreateJob, admin: Admin
) -> None:
    tokens = register(tenant, 3)
    create_job(tenant, job_id="j")
    outcomes = {"dev-0000": "SUCCEEDED", "dev-0001": "FAILED", "dev-0002": "REJECTED"}

    for n, (device, outcome) in enumerate(outcomes.items()):
        if outcome != "REJECTED":
            assert put("j", tokens[device], status="IN_PROGRESS")[0] == 200
        assert put("j", tokens[device], status=outcome)[0] == 200
        job = admin.execute("SELECT status FROM jobs WHERE tenant_id = %s AND job_id = 'j'", [tenant]).fetchone()
        assert job is not None
        assert job["status"] == ("COMPLETED" if n == len(outcomes) - 1 else "IN_PROGRESS")


def test_log_lines_of_a_device_call_carry_its_tenant_and_device(tenant: str, register: Register) -> None:
    from jobs_core.observability import logger

    token = register(tenant, 1)["dev-0000"]
    assert invoke("GET", "/device/v1/jobs/pending", token=token)[0] == 200
    keys = logger.get_current_keys()
    assert (keys["tenant_id"], keys["device_id"]) == (tenant, "dev-0000")
    assert keys["correlation_id"]
