"""Executions that cannot hang: in-progress and step timeouts driven by the sweep's simulated time,
retries as new attempts, start-next in one call, and the operator's force cancel."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bench.instruments import all_at_once
from jobs_core.domain import executions, jobs_cancel
from jobs_core.domain.models import ExecutionUpdate, StartNext
from jobs_core.domain.sweep import sweep
from jobs_core.errors import Conflict, InvalidRequest
from jobs_core.store.db import Database
from tests.factories import Admin, CreateJob, Register, execution_row, job_status
from tests.helpers import device_put, hintless, invoke, operator_claims


def as_operator(tenant: str, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    return invoke(method, path, claims=operator_claims(tenant), **kwargs)


def start_next(token: str, **body: Any) -> tuple[int, Any]:
    return invoke("PUT", "/device/v1/jobs/next", token=token, body=body or None)


def later(minutes: float) -> datetime:
    return datetime.now(UTC) + timedelta(minutes=minutes)


class TestStartNext:
    def test_claims_the_oldest_then_returns_it_until_it_finishes(
        self, tenant: str, register: Register, create_job: CreateJob
    ) -> None:
        token = register(tenant, 1)["dev-0000"]
        assert hintless(start_next(token)[1]) == {"execution": None, "claimed": False}
        for job_id in ("first", "second"):
            create_job(tenant, job_id=job_id, document_params={"v": job_id})

        status, body = start_next(token, status_details={"step": "start"}, step_timeout_minutes=10)

        assert status == 200
        execution = body["execution"]
        assert (execution["job_id"], execution["status"], execution["execution_number"]) == ("first", "IN_PROGRESS", 2)
        assert execution["document"] == {"type": "firmware", "params": {"v": "first"}}
        assert execution["status_details"] == {"step": "start"} and execution["attempt"] == 1
        assert 590 <= execution["approximate_seconds_before_timed_out"] <= 600
        assert body["claimed"] is True
        answer = start_next(token, status_details={"ignored": True})[1]
        again = answer["execution"]
        assert answer["claimed"] is False
        ignore = {"approximate_seconds_before_timed_out"}
        assert {k: v for k, v in again.items() if k not in ignore} == {  # the same one, unchanged
            k: v for k, v in execution.items() if k not in ignore
        }
        assert device_put("first", token, body={"status": "SUCCEEDED"})[0] == 200
        assert start_next(token)[1]["execution"]["job_id"] == "second"

    def test_skips_what_it_may_not_claim(self, tenant: str, register: Register, create_job: CreateJob) -> None:
        token = register(tenant, 1)["dev-0000"]
        create_job(tenant, job_id="canceled")
        assert as_operator(tenant, "DELETE", "/customer/jobs/canceled")[0] == 200
        create_job(tenant, job_id="open")
        assert start_next(token)[1]["execution"]["job_id"] == "open"

    def test_32_at_once_never_claim_one_twice_and_each_gets_an_execution(
        self, database_url: str, tenant: str, register: Register, create_job: CreateJob, admin: Admin
    ) -> None:
        token = register(tenant, 1)["dev-0000"]
        for i in range(3):
            create_job(tenant, job_id=f"j{i}")

        outcomes = all_at_once(database_url, 32, lambda db, i: executions.start_next(db, token, StartNext()))

        results = [o.result for o in outcomes]
        assert not [r for r in results if isinstance(r, Exception)], results
        returned = {r.execution.job_id for r in results if r.execution}
        rows = admin.execute(
            "SELECT job_id, status, execution_number FROM job_executions WHERE tenant_id = %s ORDER BY job_id", [tenant]
        ).fetchall()
        claimed = {r["job_id"] for r in rows if r["status"] == "IN_PROGRESS"}
        # every call got an execution; what was returned is what was claimed, each claimed once (one
        # change: version 2), oldest first; the rest are untouched
        assert all(r.execution is not None for r in results)
        assert returned == claimed and claimed == {f"j{i}" for i in range(len(claimed))}
        assert all(r["execution_number"] == (2 if r["job_id"] in claimed else 1) for r in rows)

    def test_one_after_the_other_they_claim_every_job_in_order(
        self, db: Database, tenant: str, register: Register, create_job: CreateJob
    ) -> None:
        token = register(tenant, 1)["dev-0000"]
        for i in range(3):
            create_job(tenant, job_id=f"j{i}")
        order = []
        while (started := executions.start_next(db, token, StartNext()).execution) is not None:
            order.append(started.job_id)
            executions.update(db, token, started.job_id, ExecutionUpdate(status="SUCCEEDED"))
        assert order == ["j0", "j1", "j2"]


class TestTimeouts:
    def test_an_in_progress_timeout_times_out_what_runs_too_long(
        self, db: Database, tenant: str, register: Register, create_job: CreateJob, admin: Admin
    ) -> None:
        token = register(tenant, 1)["dev-0000"]
        create_job(tenant, job_id="j", timeout_minutes=5)
        claimed = executions.update(db, token, "j", ExecutionUpdate(status="IN_PROGRESS"))
        assert claimed.timeout_at is not None and 295 <= (claimed.approximate_seconds_before_timed_out or 0) <= 300

        sweep(db, now=later(4))
        assert execution_row(admin, tenant, "j", "dev-0000")["status"] == "IN_PROGRESS"
        sweep(db, now=later(6))

        assert execution_row(admin, tenant, "j", "dev-0000")["status"] == "TIMED_OUT"
        assert job_status(admin, tenant, "j") == "COMPLETED"

    def test_a_step_timeout_replaces_the_previous_step(
        self, db: Database, tenant: str, register: Register, create_job: CreateJob, admin: Admin
    ) -> None:
        token = register(tenant, 1)["dev-0000"]
        create_job(tenant, job_id="j", timeout_minutes=60)
        executions.update(db, token, "j", ExecutionUpdate(status="IN_PROGRESS", step_timeout_minutes=2))
        moved = executions.update(db, token, "j", ExecutionUpdate(status="IN_PROGRESS", step_timeout_minutes=10))
        assert 590 <= (moved.approximate_seconds_before_timed_out or 0) <= 600

        sweep(db, now=later(3))  # past the first step's deadline, not the second's
        assert execution_row(admin, tenant, "j", "dev-0000")["status"] == "IN_PROGRESS"
        sweep(db, now=later(11))
        assert execution_row(admin, tenant, "j", "dev-0000")["status"] == "TIMED_OUT"

    def test_the_earlier_deadline_wins(
        self, db: Database, tenant: str, register: Register, create_job: CreateJob
    ) -> None:
        token = register(tenant, 1)["dev-0000"]
        create_job(tenant, job_id="j", timeout_minutes=5)
        claimed = executions.update(db, token, "j", ExecutionUpdate(status="IN_PROGRESS", step_timeout_minutes=30))
        assert 295 <= (claimed.approximate_seconds_before_timed_out or 0) <= 300

    def test_a_terminal_execution_has_no_deadline(
        self, db: Database, tenant: str, register: Register, create_job: CreateJob
    ) -> None:
        token = register(tenant, 1)["dev-0000"]
        create_job(tenant, job_id="j", timeout_minutes=5)
        executions.update(db, token, "j", ExecutionUpdate(status="IN_PROGRESS"))
        done = executions.update(db, token, "j", ExecutionUpdate(status="SUCCEEDED"))
        assert (done.timeout_at, done.approximate_seconds_before_timed_out) == (None, None)

    @pytest.mark.parametrize("minutes", [0, 10081, "5"])
    def test_timeouts_out_of_range_are_422(
        self, minutes: Any, tenant: str, register: Register, create_job: CreateJob
    ) -> None:
        token = register(tenant, 1)["dev-0000"]
        create_job(tenant, job_id="j")
        assert device_put("j", token, body={"status": "IN_PROGRESS", "step_timeout_minutes": minutes})[0] == 422
        job = {"document_type": "x", "target_all": True, "timeout_minutes": minutes}
        assert as_operator(tenant, "POST", "/customer/jobs", body=job)[0] == 422


class TestRetries:
    def test_a_failed_attempt_with_a_retry_left_is_queued_again_in_one_change(
        self, tenant: str, register: Register, create_job: CreateJob, admin: Admin
    ) -> None:
        token = register(tenant, 1)["dev-0000"]
        create_job(tenant, job_id="j", retry=[{"failure_type": "FAILED", "number_of_retries": 1}])
        assert device_put("j", token, body={"status": "IN_PROGRESS"})[0] == 200

        status, body = device_put("j", token, body={"status": "FAILED", "status_details": {"why": "flash"}})

        assert status == 200
        assert (body["status"], body["attempt"], body["execution_number"]) == ("QUEUED", 2, 3)
        assert job_status(admin, tenant, "j") == "IN_PROGRESS"  # active again
        detail = as_operator(tenant, "GET", "/customer/jobs/j/executions/dev-0000")[1]
        assert detail["attempt"] == 2 and detail["status"] == "QUEUED" and detail["status_details"] is None
        assert [(a["attempt"], a["status"], a["status_details"]) for a in detail["attempts"]] == [
            (1, "FAILED", {"why": "flash"})
        ]
        assert device_put("j", token, body={"status": "IN_PROGRESS"})[0] == 200
        status, body = device_put("j", token, body={"status": "FAILED"})
        assert (status, body["status"], body["attempt"]) == (200, "FAILED", 2)  # no retry left: final
        assert job_status(admin, tenant, "j") == "COMPLETED"

    def test_a_timed_out_attempt_with_a_retry_left_is_queued_again(
        self, db: Database, tenant: str, register: Register, create_job: CreateJob, admin: Admin
    ) -> None:
        token = register(tenant, 1)["dev-0000"]
        create_job(tenant, job_id="j", timeout_minutes=5, retry=[{"failure_type": "TIMED_OUT", "number_of_retries": 1}])
        executions.update(db, token, "j", ExecutionUpdate(status="IN_PROGRESS"))

        first = sweep(db, now=later(6))

        row = execution_row(admin, tenant, "j", "dev-0000")
        assert (row["status"], row["attempt"], row["timeout_at"]) == ("QUEUED", 2, None) and first.retried >= 1
        executions.update(db, token, "j", ExecutionUpdate(status="IN_PROGRESS"))
        sweep(db, now=later(12))
        row = execution_row(admin, tenant, "j", "dev-0000")
        assert (row["status"], row["attempt"]) == ("TIMED_OUT", 2)
        attempts = as_operator(tenant, "GET", "/customer/jobs/j/executions/dev-0000")[1]["attempts"]
        assert [(a["attempt"], a["status"]) for a in attempts] == [(1, "TIMED_OUT")]

    def test_all_is_one_budget_for_both_failure_types(
        self, db: Database, tenant: str, register: Register, create_job: CreateJob, admin: Admin
    ) -> None:
        token = register(tenant, 1)["dev-0000"]
        create_job(tenant, job_id="j", timeout_minutes=5, retry=[{"failure_type": "ALL", "number_of_retries": 1}])
        executions.update(db, token, "j", ExecutionUpdate(status="IN_PROGRESS"))
        assert executions.update(db, token, "j", ExecutionUpdate(status="FAILED")).status == "QUEUED"
        executions.update(db, token, "j", ExecutionUpdate(status="IN_PROGRESS"))
        sweep(db, now=later(6))
        assert execution_row(admin, tenant, "j", "dev-0000")["status"] == "TIMED_OUT"

    def test_an_expired_job_is_not_retried(
        self, db: Database, tenant: str, register: Register, create_job: CreateJob, admin: Admin
    ) -> None:
        token = register(tenant, 1)["dev-0000"]
        create_job(
            tenant,
            job_id="j",
            expires_in_hours=1,
            timeout_minutes=5,
            retry=[{"failure_type": "ALL", "number_of_retries": 3}],
        )
        executions.update(db, token, "j", ExecutionUpdate(status="IN_PROGRESS"))
        sweep(db, now=later(61))
        assert execution_row(admin, tenant, "j", "dev-0000")["status"] == "TIMED_OUT"

    @pytest.mark.parametrize(
        "retry",
        [
            [{"failure_type": "FAILED", "number_of_retries": 11}],
            [{"failure_type": "FAILED", "number_of_retries": 1}, {"failure_type": "FAILED", "number_of_retries": 2}],
            [{"failure_type": "REJECTED", "number_of_retries": 1}],
            [{"failure_type": "ALL", "number_of_retries": 1}] * 3,
        ],
    )
    def test_invalid_criteria_are_422(self, retry: Any, tenant: str, register: Register) -> None:
        register(tenant, 1)
        job = {"document_type": "x", "target_all": True, "retry": retry}
        assert as_operator(tenant, "POST", "/customer/jobs", body=job)[0] == 422


class TestForceCancel:
    def test_ends_running_executions_as_canceled_and_the_device_is_told(
        self, tenant: str, register: Register, create_job: CreateJob, admin: Admin
    ) -> None:
        tokens = register(tenant, 2)
        create_job(tenant, job_id="j")
        assert device_put("j", tokens["dev-0000"], body={"status": "IN_PROGRESS"})[0] == 200

        status, body = as_operator(tenant, "DELETE", "/customer/jobs/j", query="force=true", body={"reason": "bad"})

        assert (status, body) == (200, {"job_id": "j", "status": "CANCELED"})
        rows = admin.execute(
            "SELECT device_id, status, status_details FROM job_executions WHERE tenant_id = %s ORDER BY device_id",
            [tenant],
        ).fetchall()
        assert [(r["status"], r["status_details"]) for r in rows] == [
            ("CANCELED", {"reason": "bad"}),
            ("REJECTED", {"reason": "bad"}),
        ]
        status, body = device_put("j", tokens["dev-0000"], body={"status": "SUCCEEDED"})
        assert status == 400 and "canceled" in body["message"]
        assert job_status(admin, tenant, "j") == "CANCELED"

    def test_racing_device_finishes_each_execution_ends_once(
        self, database_url: str, db: Database, tenant: str, register: Register, create_job: CreateJob, admin: Admin
    ) -> None:
        tokens = list(register(tenant, 24).values())
        create_job(tenant, job_id="j")
        for token in tokens:
            executions.update(db, token, "j", ExecutionUpdate(status="IN_PROGRESS"))

        def work(worker: Database, i: int) -> object:
            if i == len(tokens):
                return jobs_cancel.cancel(worker, tenant, "j", "race", force=True)
            return executions.update(worker, tokens[i], "j", ExecutionUpdate(status="SUCCEEDED"))

        outcomes = [o.result for o in all_at_once(database_url, len(tokens) + 1, work)]

        finishes, cancel = outcomes[:-1], outcomes[-1]
        # a finish that lost the race: 409 (changed concurrently) or 400 (it saw CANCELED already)
        lost = [r for r in finishes if isinstance(r, Exception)]
        assert all(isinstance(r, InvalidRequest | Conflict) for r in lost), lost
        statuses = Counter(
            r["status"] for r in admin.execute("SELECT status FROM job_executions WHERE tenant_id = %s", [tenant])
        )
        assert set(statuses) <= {"SUCCEEDED", "CANCELED"} and sum(statuses.values()) == 24
        assert statuses["SUCCEEDED"] == len(finishes) - len(lost)  # every finish answered 200 stands
        if isinstance(cancel, Exception):  # every device finished first: the job completed, nothing to cancel
            assert isinstance(cancel, InvalidRequest) and job_status(admin, tenant, "j") == "COMPLETED"
        else:
            assert job_status(admin, tenant, "j") == "CANCELED"  # never COMPLETED afterwards
        counts = admin.execute(
            "SELECT sum(succeeded) s, sum(canceled) c, sum(in_progress) p"
            " FROM job_execution_counts WHERE tenant_id = %s",
            [tenant],
        ).fetchone()
        assert counts == {"s": statuses["SUCCEEDED"], "c": statuses["CANCELED"], "p": 0}


class TestCancelOneExecution:
    def test_queued_is_rejected_running_needs_force(
        self, tenant: str, register: Register, create_job: CreateJob, admin: Admin
    ) -> None:
        tokens = register(tenant, 2)
        create_job(tenant, job_id="j")
        assert device_put("j", tokens["dev-0000"], body={"status": "IN_PROGRESS"})[0] == 200

        status, body = as_operator(tenant, "DELETE", "/customer/jobs/j/executions/dev-0001", body={"reason": "lost"})
        assert status == 200 and (body["status"], body["status_details"]) == ("REJECTED", {"reason": "lost"})

        status, body = as_operator(tenant, "DELETE", "/customer/jobs/j/executions/dev-0000")
        assert status == 400 and "force=true" in body["message"]
        stale = as_operator(
            tenant, "DELETE", "/customer/jobs/j/executions/dev-0000", query="force=true", body={"execution_number": 1}
        )
        assert stale[0] == 409
        status, body = as_operator(tenant, "DELETE", "/customer/jobs/j/executions/dev-0000", query="force=true")
        assert status == 200 and body["status"] == "CANCELED"
        assert job_status(admin, tenant, "j") == "COMPLETED"  # its last active execution ended
        assert as_operator(tenant, "DELETE", "/customer/jobs/j/executions/dev-0000", query="force=true")[0] == 400

    def test_another_tenants_execution_is_404(
        self, tenant: str, other_tenant: str, register: Register, create_job: CreateJob
    ) -> None:
        register(tenant, 1)
        create_job(tenant, job_id="j")
        for method in ("GET", "DELETE"):
            assert as_operator(other_tenant, method, "/customer/jobs/j/executions/dev-0000")[0] == 404
