"""Rollouts that protect the fleet, driven by the sweep's simulated time (no sleeping): a scheduled
start and each end behaviour, a paced and exponential release, and an abort rule that stops a job
at the update that crosses it while 32 devices finish at once."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bench.instruments import all_at_once
from jobs_core.domain import executions
from jobs_core.domain.models import ExecutionUpdate
from jobs_core.domain.sweep import SweepResult, sweep
from jobs_core.store.db import Database
from tests.factories import Admin, CreateJob, Register, job_status
from tests.helpers import device_put, hintless, invoke, operator_claims


def as_operator(tenant: str, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    return invoke(method, path, claims=operator_claims(tenant), **kwargs)


def create(tenant: str, **body: Any) -> dict[str, Any]:
    body = {"document_type": "firmware", "target_all": True, **body}
    status, created = as_operator(tenant, "POST", "/customer/jobs", body=body)
    assert status == 201, created
    return dict(created)


def detail(tenant: str, job_id: str) -> dict[str, Any]:
    status, body = as_operator(tenant, "GET", f"/customer/jobs/{job_id}")
    assert status == 200, body
    return dict(body)


def statuses(admin: Admin, tenant: str, job_id: str) -> Counter[str]:
    rows = admin.execute(
        "SELECT status, count(*) AS n FROM job_executions WHERE tenant_id = %s AND job_id = %s GROUP BY status",
        [tenant, job_id],
    ).fetchall()
    return Counter({row["status"]: row["n"] for row in rows})


def created_at(admin: Admin, tenant: str, job_id: str) -> datetime:
    row = admin.execute("SELECT created_at FROM jobs WHERE tenant_id = %s AND job_id = %s", [tenant, job_id]).fetchone()
    assert row is not None
    return row["created_at"]  # type: ignore[no-any-return]


def released(result: SweepResult, tenant: str) -> int:
    """What a sweep released for this tenant (the tests share a database: it sweeps every tenant)."""
    return sum(n for t, _, n, _ in result.releases if t == tenant)


def iso(at: datetime) -> str:
    return at.isoformat()


def finish(db: Database, tokens: dict[str, str], job_id: str, devices: list[str], status: str = "SUCCEEDED") -> None:
    for device in devices:
        executions.update(db, tokens[device], job_id, ExecutionUpdate(status="IN_PROGRESS"))
        executions.update(db, tokens[device], job_id, ExecutionUpdate(status=status))  # type: ignore[arg-type]


def invisible_to(token: str, job_id: str) -> bool:
    """The device sees nothing of the job: not pending, not to start, not to read or change."""
    return (
        invoke("GET", "/device/v1/jobs/pending", token=token)[1]["jobs"] == []
        and hintless(invoke("PUT", "/device/v1/jobs/next", token=token)[1]) == {"execution": None, "claimed": False}
        and invoke("GET", f"/device/v1/jobs/{job_id}/execution", token=token)[0] == 404
        and device_put(job_id, token, body={"status": "IN_PROGRESS"})[0] == 404
        and device_put(job_id, token, body={"status": "REJECTED"})[0] == 404
    )


class TestPacedRelease:
    def test_10000_devices_at_100_a_minute_doubling_after_100_succeeded(
        self, db: Database, tenant: str, register: Register, admin: Admin
    ) -> None:
        tokens = register(tenant, 10_000)
        devices = sorted(tokens)
        rollout = {
            "maximum_per_minute": 1000,
            "exponential_rate": {
                "base_rate_per_minute": 100,
                "increment_factor": 2.0,
                "rate_increase_criteria": {"number_of_succeeded_things": 100},
            },
        }
        assert create(tenant, job_id="fw", rollout=rollout)["execution_count"] == 10_000
        t0 = created_at(admin, tenant, "fw")

        # the first minute's worth is released at once, in queue order (by device id)
        assert statuses(admin, tenant, "fw") == {"QUEUED": 100, "UNRELEASED": 9_900}
        assert invoke("GET", "/device/v1/jobs/pending", token=tokens[devices[99]])[1]["jobs"][0]["job_id"] == "fw"
        assert invisible_to(tokens[devices[100]], "fw")
        progress = detail(tenant, "fw")["progress"]
        assert progress["released"] == 100 and progress["unreleased"] == 9_900
        assert progress["rate_per_minute"] == 100
        assert datetime.fromisoformat(progress["next_release_at"]) == t0 + timedelta(seconds=0.6)

        # (minutes after creation, devices that succeed just before, released then, rate in force)
        ticks = [
            (1, 100, 200, 200),  # 100 succeeded: the rate doubles before the tick releases
            (2, 100, 400, 400),  # 100 more since the increase: doubles again
            (3, 0, 400, 400),  # no new successes: the rate stays
            (3, 0, 0, 400),  # the same instant again: the credit is spent
            (3.5, 0, 200, 400),  # half a minute: half the rate
            (10, 0, 400, 400),  # a late tick: at most a minute's worth, never a burst
        ]
        sent = 100
        for minutes, succeed, expected, rate in ticks:
            finish(db, tokens, "fw", devices[sent - succeed : sent] if succeed else [])
            result = sweep(db, now=t0 + timedelta(minutes=minutes))
            assert released(result, tenant) == expected, (minutes, result)
            if expected:
                assert [r for r in result.releases if r[0] == tenant] == [(tenant, "fw", expected, rate)]
            sent += expected
            counts = statuses(admin, tenant, "fw")
            assert counts["UNRELEASED"] == 10_000 - sent, minutes
            assert detail(tenant, "fw")["progress"]["rate_per_minute"] == rate
        # exactly the first `released` devices, in order, were released
        first_held = admin.execute(
            "SELECT min(device_id) AS d FROM job_executions WHERE tenant_id = %s AND status = 'UNRELEASED'", [tenant]
        ).fetchone()
        assert first_held == {"d": devices[sent]}
        assert invisible_to(tokens[devices[sent]], "fw")
        progress = detail(tenant, "fw")["progress"]
        assert (progress["released"], progress["unreleased"]) == (sent, 10_000 - sent)

    def test_notified_things_raise_the_rate_up_to_the_maximum(
        self, db: Database, tenant: str, register: Register, admin: Admin
    ) -> None:
        register(tenant, 400)
        rollout = {
            "maximum_per_minute": 25,
            "exponential_rate": {
                "base_rate_per_minute": 10,
                "increment_factor": 1.5,
                "rate_increase_criteria": {"number_of_notified_things": 10},
            },
        }
        create(tenant, job_id="fw", rollout=rollout)
        t0 = created_at(admin, tenant, "fw")
        ticks = [sweep(db, now=t0 + timedelta(minutes=m)).releases for m in range(1, 5)]
        rates = [next(r[2:] for r in releases if r[0] == tenant) for releases in ticks]
        assert rates == [(15, 15), (22, 22), (25, 25), (25, 25)]  # 10 x 1.5 = 15, x 1.5 = 22.5, then 25

    def test_a_constant_rate_and_a_tick_that_is_cut_short_by_its_budget(
        self, db: Database, tenant: str, register: Register, admin: Admin
    ) -> None:
        register(tenant, 100)
        for job_id in ("a", "b", "c"):
            create(tenant, job_id=job_id, rollout={"maximum_per_minute": 20})
        t0 = created_at(admin, tenant, "c")
        sweep(db, now=t0)  # what other tests left due
        first = sweep(db, now=t0 + timedelta(minutes=1), batch_size=30, max_batches=1)
        assert first.released <= 30  # the budget of one batch, to the jobs due longest
        second = sweep(db, now=t0 + timedelta(minutes=1), batch_size=30, max_batches=5)
        assert released(first, tenant) + released(second, tenant) == 60  # the minute's credit: 3 x 20
        assert sum(statuses(admin, tenant, j)["QUEUED"] for j in "abc") == 3 * 20 + 3 * 20


def test_sweeps_at_once_release_no_more_than_the_rate(
    database_url: str, db: Database, tenant: str, register: Register, admin: Admin
) -> None:
    register(tenant, 200)
    create(tenant, job_id="fw", rollout={"maximum_per_minute": 30})
    t0 = created_at(admin, tenant, "fw")
    sweep(db, now=t0)  # what other tests left due

    outcomes = all_at_once(database_url, 8, lambda worker, i: sweep(worker, now=t0 + timedelta(minutes=1)))

    results = [o.result for o in outcomes]
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sum(released(r, tenant) for r in results if isinstance(r, SweepResult)) == 30
    assert statuses(admin, tenant, "fw") == {"QUEUED": 60, "UNRELEASED": 140}


class TestScheduling:
    def test_a_scheduled_job_is_invisible_until_its_start(
        self, db: Database, tenant: str, register: Register, admin: Admin
    ) -> None:
        tokens = register(tenant, 3)
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
        created = create(tenant, job_id="later", scheduling={"start_time": iso(start)}, expires_in_hours=1)
        assert created["status"] == "SCHEDULED"
        assert datetime.fromisoformat(created["expires_at"]) == start + timedelta(hours=1)  # from the start
        assert all(invisible_to(token, "later") for token in tokens.values())
        listed = as_operator(tenant, "GET", "/customer/jobs", query="status=SCHEDULED")[1]
        assert [job["job_id"] for job in listed] == ["later"]
        assert listed[0]["progress"]["next_release_at"] == iso(start)

        sweep(db, now=start - timedelta(seconds=1))
        assert job_status(admin, tenant, "later") == "SCHEDULED"
        assert released(sweep(db, now=start), tenant) == 3
        assert job_status(admin, tenant, "later") == "IN_PROGRESS"
        assert invoke("PUT", "/device/v1/jobs/next", token=tokens["dev-0001"])[1]["execution"]["job_id"] == "later"

    def test_a_scheduled_job_can_be_canceled(self, tenant: str, register: Register, admin: Admin) -> None:
        register(tenant, 2)
        create(tenant, job_id="later", scheduling={"start_time": iso(datetime.now(UTC) + timedelta(days=1))})
        status, body = as_operator(tenant, "DELETE", "/customer/jobs/later", body={"reason": "not this week"})
        assert (status, body) == (200, {"job_id": "later", "status": "CANCELED"})
        assert statuses(admin, tenant, "later") == {"REJECTED": 2}
        assert detail(tenant, "later")["progress"]["stop_reason"] == "canceled: not this week"

    @pytest.mark.parametrize("end_behavior", ["STOP_ROLLOUT", "CANCEL", "FORCE_CANCEL"])
    def test_each_end_behavior(
        self, end_behavior: str, db: Database, tenant: str, register: Register, admin: Admin
    ) -> None:
        tokens = register(tenant, 30)
        end = datetime.now(UTC) + timedelta(minutes=45)
        scheduling = {"end_time": iso(end), "end_behavior": end_behavior}
        create(tenant, job_id="fw", rollout={"maximum_per_minute": 10}, scheduling=scheduling)
        executions.update(db, tokens["dev-0000"], "fw", ExecutionUpdate(status="IN_PROGRESS"))
        finish(db, tokens, "fw", ["dev-0001"])
        assert statuses(admin, tenant, "fw") == {"IN_PROGRESS": 1, "SUCCEEDED": 1, "QUEUED": 8, "UNRELEASED": 20}

        assert released(sweep(db, now=end - timedelta(seconds=1)), tenant) == 10  # 45 minutes: a minute's worth
        assert job_status(admin, tenant, "fw") == "IN_PROGRESS"
        result = sweep(db, now=end)

        assert result.ended >= 1 and released(result, tenant) == 0
        reason = {"reason": f"end_time passed: {end_behavior}"}
        rows = admin.execute(
            "SELECT device_id, status, status_details FROM job_executions WHERE tenant_id = %s ORDER BY device_id",
            [tenant],
        ).fetchall()
        by_status = Counter(row["status"] for row in rows)
        assert all(row["status_details"] == reason for row in rows if row["status"] in ("REJECTED", "CANCELED"))
        progress = detail(tenant, "fw")["progress"]
        assert progress["stop_reason"] == f"end_time passed: {end_behavior}"
        assert progress["rate_per_minute"] == 10 and progress["next_release_at"] is None
        if end_behavior == "STOP_ROLLOUT":  # what was released goes on, and the job completes
            assert by_status == {"REJECTED": 10, "QUEUED": 18, "IN_PROGRESS": 1, "SUCCEEDED": 1}
            assert job_status(admin, tenant, "fw") == "IN_PROGRESS"
            finish(db, tokens, "fw", [f"dev-{i:04d}" for i in range(2, 20)])
            executions.update(db, tokens["dev-0000"], "fw", ExecutionUpdate(status="SUCCEEDED"))
            assert job_status(admin, tenant, "fw") == "COMPLETED"
        elif end_behavior == "CANCEL":  # as the operator's cancel: what runs may still finish
            assert by_status == {"REJECTED": 28, "IN_PROGRESS": 1, "SUCCEEDED": 1}
            assert job_status(admin, tenant, "fw") == "CANCELED"
            assert device_put("fw", tokens["dev-0000"], body={"status": "SUCCEEDED"})[0] == 200
            assert job_status(admin, tenant, "fw") == "CANCELED"
        else:  # FORCE_CANCEL ends what runs too
            assert by_status == {"REJECTED": 28, "CANCELED": 1, "SUCCEEDED": 1}
            assert device_put("fw", tokens["dev-0000"], body={"status": "SUCCEEDED"})[0] == 400
        stopped = detail(tenant, "fw")["progress"]["stopped_at"]
        sweep(db, now=end + timedelta(hours=1))
        assert detail(tenant, "fw")["progress"]["stopped_at"] == stopped  # once


class TestAbort:
    # Three rounds: counting from a snapshot instead of under the job's lock fails about one in three.
    @pytest.mark.parametrize("round_", range(3))
    def test_20_percent_failed_of_at_least_50_stops_the_job_at_the_update_that_crosses_it(
        self, round_: int, database_url: str, db: Database, tenant: str, register: Register, admin: Admin
    ) -> None:
        tokens = register(tenant, 120)
        devices = sorted(tokens)
        abort = [{"failure_type": "FAILED", "action": "CANCEL", "threshold_percentage": 20,
                  "min_number_of_executed_things": 50}]  # fmt: skip
        create(tenant, job_id="fw", abort=abort)
        finish(db, tokens, "fw", devices[:40])
        finish(db, tokens, "fw", devices[40:48], status="FAILED")  # 48 finished, 8 failed: 16.7%
        racers = devices[48:80]
        for device in racers:
            executions.update(db, tokens[device], "fw", ExecutionUpdate(status="IN_PROGRESS"))
        assert job_status(admin, tenant, "fw") == "IN_PROGRESS"

        failed = ExecutionUpdate(status="FAILED")
        outcomes = all_at_once(
            database_url, 32, lambda worker, i: executions.update(worker, tokens[racers[i]], "fw", failed)
        )

        assert not [o.result for o in outcomes if isinstance(o.result, Exception)]  # every finish accepted
        # Whichever of the 32 came second (in the order they locked the job) saw 50 finished, 10
        # FAILED: 20%. Counting from a snapshot instead, two finishing together could each see 49.
        job = detail(tenant, "fw")
        assert job["status"] == "CANCELED"
        reason = "aborted: 10 of 50 finished executions FAILED (20.0%), the rule is 20% of at least 50"
        assert job["progress"]["stop_reason"] == reason
        assert job["counts"]["FAILED"] == 40 and job["counts"]["QUEUED"] == 40
        # from that update on, nothing of the job can start
        assert invoke("PUT", "/device/v1/jobs/next", token=tokens[devices[100]])[1]["execution"] is None
        # the schedule ends what was queued, with the reason; the job never completes
        sweep(db)
        assert statuses(admin, tenant, "fw") == {"SUCCEEDED": 40, "FAILED": 40, "REJECTED": 40}
        rejected = admin.execute(
            "SELECT DISTINCT status_details FROM job_executions WHERE tenant_id = %s AND status = 'REJECTED'",
            [tenant],
        ).fetchall()
        assert rejected == [{"status_details": {"reason": reason}}]
        sweep(db, now=datetime.now(UTC) + timedelta(days=2))
        assert job_status(admin, tenant, "fw") == "CANCELED"

    def test_timed_out_executions_can_abort_a_job_in_the_sweep(
        self, db: Database, tenant: str, register: Register, admin: Admin
    ) -> None:
        tokens = register(tenant, 4)
        abort = [{"failure_type": "ALL", "action": "CANCEL", "threshold_percentage": 50,
                  "min_number_of_executed_things": 2}]  # fmt: skip
        create(tenant, job_id="fw", abort=abort, timeout_minutes=5)
        for device in ("dev-0000", "dev-0001"):
            executions.update(db, tokens[device], "fw", ExecutionUpdate(status="IN_PROGRESS"))
        result = sweep(db, now=datetime.now(UTC) + timedelta(minutes=6))
        assert result.timed_out >= 2 and result.aborted >= 1
        assert job_status(admin, tenant, "fw") == "CANCELED"
        assert detail(tenant, "fw")["progress"]["stop_reason"].startswith("aborted: 2 of 2 finished executions ALL")


class TestValidation:
    @pytest.mark.parametrize(
        "fields",
        [
            {"scheduling": {}},
            {"scheduling": {"start_time": "2030-01-01T00:00:00"}},  # no offset
            {"scheduling": {"start_time": "soon"}},
            {"scheduling": {"end_behavior": "CANCEL", "start_time": "2030-01-01T00:00:00Z"}},
            {"scheduling": {"start_time": "2030-01-01T00:00:00Z", "end_time": "2030-01-01T00:29:59Z"}},
            {"scheduling": {"end_time": "2020-01-01T00:00:00Z"}},
            {"scheduling": {"start_time": "2099-01-01T00:00:00Z"}},
            {"scheduling": {"end_time": "2030-01-01T00:00:00Z", "end_behavior": "PAUSE"}},
            {"rollout": {}},
            {"rollout": {"maximum_per_minute": 0}},
            {"rollout": {"maximum_per_minute": 1001}},
            {"rollout": {"maximum_per_minute": "10"}},
            {"rollout": {"exponential_rate": {"base_rate_per_minute": 10, "increment_factor": 5.5,
                                              "rate_increase_criteria": {"number_of_notified_things": 1}}}},
            {"rollout": {"exponential_rate": {"base_rate_per_minute": 10, "increment_factor": 2,
                                              "rate_increase_criteria": {}}}},
            {"rollout": {"maximum_per_minute": 5, "exponential_rate": {
                "base_rate_per_minute": 10, "increment_factor": 2,
                "rate_increase_criteria": {"number_of_succeeded_things": 1}}}},
            {"abort": []},
            {"abort": [{"failure_type": "FAILED", "action": "CANCEL", "threshold_percentage": 101,
                        "min_number_of_executed_things": 1}]},
            {"abort": [{"failure_type": "FAILED", "action": "STOP", "threshold_percentage": 10,
                        "min_number_of_executed_things": 1}]},
            {"abort": [{"failure_type": "FAILED", "action": "CANCEL", "threshold_percentage": 10,
                        "min_number_of_executed_things": 0}]},
            {"abort": [{"failure_type": "ALL", "action": "CANCEL", "threshold_percentage": 10,
                        "min_number_of_executed_things": 1}] * 2},
        ],
    )  # fmt: skip
    def test_bad_settings_are_422_and_create_nothing(
        self, fields: dict[str, Any], tenant: str, register: Register, admin: Admin
    ) -> None:
        register(tenant, 1)
        body = {"document_type": "firmware", "target_all": True, **fields}
        status, answer = as_operator(tenant, "POST", "/customer/jobs", body=body)
        assert status == 422, answer
        assert "message" in answer
        assert admin.execute("SELECT count(*) AS n FROM jobs WHERE tenant_id = %s", [tenant]).fetchone() == {"n": 0}


def test_list_and_detail_show_the_rollout(tenant: str, register: Register, create_job: CreateJob) -> None:
    register(tenant, 5)
    abort = [{"failure_type": "ALL", "action": "CANCEL", "threshold_percentage": 50.5,
              "min_number_of_executed_things": 3}]  # fmt: skip
    create(tenant, job_id="fw", rollout={"maximum_per_minute": 2}, abort=abort)
    listed = as_operator(tenant, "GET", "/customer/jobs")[1][0]
    assert listed["rollout"] == {"maximum_per_minute": 2}
    assert listed["abort"] == abort
    assert listed["counts"]["UNRELEASED"] == 3 and listed["counts"]["QUEUED"] == 2
    progress = listed["progress"]
    assert {k: progress[k] for k in ("released", "unreleased", "rate_per_minute", "stop_reason")} == {
        "released": 2,
        "unreleased": 3,
        "rate_per_minute": 2,
        "stop_reason": None,
    }
    assert progress["next_release_at"] is not None
    assert detail(tenant, "fw")["progress"] == progress
    create_job(tenant, job_id="plain")
    plain = detail(tenant, "plain")["progress"]
    assert (plain["released"], plain["unreleased"], plain["rate_per_minute"]) == (5, 0, None)
