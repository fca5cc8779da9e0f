"""Targets that follow the fleet: several targets per job, continuous jobs, devices that join and
leave; through the handlers, on real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bench.instruments import all_at_once
from jobs_core.domain import groups, jobs_create
from jobs_core.domain.job_settings import JobCreate
from jobs_core.domain.sweep import sweep
from jobs_core.store.db import Database
from tests.factories import Admin, Register
from tests.helpers import device_put, invoke, operator_claims


@pytest.fixture(autouse=True)
def _container(db: Database) -> None:
    """The handlers' database: the test database (the db fixture installs it)."""


def op(tenant: str, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    return invoke(method, path, claims=operator_claims(tenant), **kwargs)


def create(tenant: str, **body: Any) -> dict[str, Any]:
    status, created = op(tenant, "POST", "/customer/jobs", body={"document_type": "firmware", **body})
    assert status == 201, created
    return dict(created)


def job(tenant: str, job_id: str) -> dict[str, Any]:
    status, body = op(tenant, "GET", f"/customer/jobs/{job_id}", query="executions_limit=1000")
    assert status == 200, body
    return dict(body)


def statuses(tenant: str, job_id: str) -> dict[str, str]:
    return {e["device_id"]: e["status"] for e in job(tenant, job_id)["executions"]}


def pending(token: str) -> list[str]:
    status, body = invoke("GET", "/device/v1/jobs/pending", token=token)
    assert status == 200, body
    return [j["job_id"] for j in body["jobs"]]


def group(tenant: str, group_id: str, *devices: str) -> None:
    assert op(tenant, "PUT", f"/customer/groups/{group_id}")[0] in (200, 201)
    if devices:
        assert op(tenant, "POST", f"/customer/groups/{group_id}/devices", body={"device_ids": list(devices)})[0] == 200


class TestSeveralTargets:
    def test_one_execution_per_device_whatever_the_overlaps(self, tenant: str, register: Register) -> None:
        register(tenant, 6)
        group(tenant, "a", "dev-0000", "dev-0001", "dev-0002")
        group(tenant, "b", "dev-0002", "dev-0003")
        created = create(
            tenant, job_id="many", targets={"device_ids": ["dev-0003", "dev-0004"], "group_ids": ["a", "b"]}
        )
        assert created["execution_count"] == 5
        detail = job(tenant, "many")
        assert sorted(statuses(tenant, "many")) == [f"dev-{i:04d}" for i in range(5)]
        assert detail["targets"] == {"device_ids": ["dev-0003", "dev-0004"], "group_ids": ["a", "b"], "all": False}
        assert detail["target_selection"] == "SNAPSHOT" and detail["target_group_id"] is None
        assert job(tenant, "many")["counts"]["QUEUED"] == 5

    def test_unknown_targets_are_404_and_nothing_is_created(
        self, tenant: str, register: Register, admin: Admin
    ) -> None:
        register(tenant, 1)
        group(tenant, "a", "dev-0000")
        status, body = op(
            tenant,
            "POST",
            "/customer/jobs",
            body={"document_type": "x", "targets": {"device_ids": ["dev-0000", "ghost"], "group_ids": ["a", "nope"]}},
        )
        assert status == 404 and "device ghost" in body["message"] and "group nope" in body["message"]
        assert admin.execute("SELECT count(*) AS n FROM jobs WHERE tenant_id = %s", [tenant]).fetchone() == {"n": 0}

    @pytest.mark.parametrize(
        "targets",
        [
            {"device_ids": [f"d{i}" for i in range(101)]},
            {"device_ids": [f"d{i}" for i in range(50)], "group_ids": [f"g{i}" for i in range(51)]},
            {},
            {"device_ids": ["bad id"]},
            {"device_ids": "dev-0000"},
        ],
    )
    def test_bad_targets_are_422(self, tenant: str, targets: Any) -> None:
        status, _ = op(tenant, "POST", "/customer/jobs", body={"document_type": "x", "targets": targets})
        assert status == 422

    def test_targets_with_another_target_form_is_422(self, tenant: str) -> None:
        body = {"document_type": "x", "target_all": True, "targets": {"device_ids": ["d"]}}
        assert op(tenant, "POST", "/customer/jobs", body=body)[0] == 422

    def test_listing_by_group_finds_jobs_that_name_it_among_others(self, tenant: str, register: Register) -> None:
        register(tenant, 2)
        group(tenant, "a", "dev-0000")
        group(tenant, "b", "dev-0001")
        create(tenant, job_id="both", targets={"group_ids": ["a", "b"]})
        create(tenant, job_id="only-a", target_group_id="a")

        def ids(group_id: str) -> list[str]:
            return [j["jobId"] for j in op(tenant, "GET", "/iot/jobs", query=f"thingGroupName={group_id}")[1]["jobs"]]

        assert sorted(ids("a")) == ["both", "only-a"] and ids("b") == ["both"]


class TestContinuous:
    def test_a_device_joining_a_target_group_gets_its_execution_at_once(self, tenant: str, register: Register) -> None:
        tokens = register(tenant, 3)
        group(tenant, "lab", "dev-0000")
        create(tenant, job_id="c", target_group_id="lab", target_selection="CONTINUOUS")
        assert pending(tokens["dev-0001"]) == []
        assert op(tenant, "PUT", "/customer/groups/lab/devices/dev-0001")[0] == 200
        assert pending(tokens["dev-0001"]) == ["c"]  # in the same transaction as the add
        group(tenant, "lab", "dev-0002", "dev-0001")  # a bulk add; dev-0001 again: still one execution
        assert statuses(tenant, "c") == {"dev-0000": "QUEUED", "dev-0001": "QUEUED", "dev-0002": "QUEUED"}
        detail = job(tenant, "c")
        assert detail["target_selection"] == "CONTINUOUS" and detail["counts"]["QUEUED"] == 3

    def test_an_empty_group_is_a_fine_start_and_the_job_never_completes_by_itself(
        self, tenant: str, register: Register
    ) -> None:
        tokens = register(tenant, 1)
        group(tenant, "empty")
        assert (
            create(tenant, job_id="c", target_group_id="empty", target_selection="CONTINUOUS")["execution_count"] == 0
        )
        group(tenant, "empty", "dev-0000")
        for status in ("IN_PROGRESS", "SUCCEEDED"):
            assert device_put("c", tokens["dev-0000"], body={"status": status})[0] == 200
        assert job(tenant, "c")["status"] == "IN_PROGRESS"  # every execution ended, and it goes on
        assert op(tenant, "DELETE", "/customer/jobs/c")[1]["status"] == "CANCELED"

    def test_a_registered_device_gets_the_jobs_of_every_device(self, tenant: str, register: Register) -> None:
        register(tenant, 1)
        create(tenant, job_id="all", target_all=True, target_selection="CONTINUOUS")
        create(tenant, job_id="snap", target_all=True)
        token = op(tenant, "POST", "/customer/devices", body={"device_id": "late"})[1]["token"]
        assert pending(token) == ["all"]
        imported = op(tenant, "POST", "/customer/devices/import", body={"devices": [{"device_id": "later"}]})[1]
        assert pending(imported["devices"][0]["token"]) == ["all"]

    def test_a_paced_job_holds_newcomers_back_and_the_schedule_releases_them(
        self, db: Database, tenant: str, register: Register
    ) -> None:
        tokens = register(tenant, 4)
        group(tenant, "lab", "dev-0000")
        create(
            tenant,
            job_id="paced",
            target_group_id="lab",
            target_selection="CONTINUOUS",
            rollout={"maximum_per_minute": 1},
        )
        group(tenant, "lab", "dev-0001", "dev-0002")
        assert statuses(tenant, "paced") == {"dev-0000": "QUEUED", "dev-0001": "UNRELEASED", "dev-0002": "UNRELEASED"}
        assert pending(tokens["dev-0001"]) == []
        sweep(db, now=datetime.now(UTC) + timedelta(minutes=1, seconds=5))
        released = [d for d, s in statuses(tenant, "paced").items() if s == "QUEUED"]
        assert len(released) == 2  # one a minute

    def test_a_device_that_leaves_before_it_started_is_removed_one_that_runs_goes_on(
        self, tenant: str, register: Register
    ) -> None:
        tokens = register(tenant, 4)
        group(tenant, "lab", "dev-0000", "dev-0001", "dev-0002", "dev-0003")
        group(tenant, "other", "dev-0003")
        create(tenant, job_id="c", targets={"group_ids": ["lab", "other"]}, target_selection="CONTINUOUS")
        assert device_put("c", tokens["dev-0001"], body={"status": "IN_PROGRESS"})[0] == 200
        for device in ("dev-0000", "dev-0001", "dev-0003"):
            assert op(tenant, "DELETE", f"/customer/groups/lab/devices/{device}")[0] == 200
        assert statuses(tenant, "c") == {
            "dev-0000": "REMOVED",  # it had not started
            "dev-0001": "IN_PROGRESS",  # it had: it may finish
            "dev-0002": "QUEUED",  # still in lab
            "dev-0003": "QUEUED",  # still a target, through the other group
        }
        removed = op(tenant, "GET", "/customer/jobs/c/executions/dev-0000")[1]
        assert removed["status_details"] == {"reason": "left the job's targets"}
        assert device_put("c", tokens["dev-0001"], body={"status": "SUCCEEDED"})[0] == 200
        # back in the group: its execution stays REMOVED (terminal), no second one
        assert op(tenant, "PUT", "/customer/groups/lab/devices/dev-0000")[0] == 200
        assert statuses(tenant, "c")["dev-0000"] == "REMOVED" and pending(tokens["dev-0000"]) == []
        assert job(tenant, "c")["counts"]["REMOVED"] == 1

    def test_a_followed_group_cannot_be_deleted_until_the_job_ends(self, tenant: str, register: Register) -> None:
        register(tenant, 1)
        group(tenant, "lab", "dev-0000")
        create(tenant, job_id="c", target_group_id="lab", target_selection="CONTINUOUS")
        status, body = op(tenant, "DELETE", "/customer/groups/lab")
        assert status == 409 and "c" in body["message"]
        assert op(tenant, "DELETE", "/customer/jobs/c")[0] == 200
        assert op(tenant, "DELETE", "/customer/groups/lab")[0] == 200

    def test_at_its_end_time_it_stops_following_and_completes_once_its_work_is_over(
        self, db: Database, tenant: str, register: Register
    ) -> None:
        tokens = register(tenant, 2)
        group(tenant, "lab", "dev-0000")
        end = datetime.now(UTC) + timedelta(minutes=40)
        create(
            tenant,
            job_id="c",
            target_group_id="lab",
            target_selection="CONTINUOUS",
            scheduling={"end_time": end.isoformat(), "end_behavior": "STOP_ROLLOUT"},
        )
        for status in ("IN_PROGRESS", "SUCCEEDED"):
            assert device_put("c", tokens["dev-0000"], body={"status": status})[0] == 200
        assert job(tenant, "c")["status"] == "IN_PROGRESS"
        sweep(db, now=end + timedelta(minutes=1))
        assert job(tenant, "c")["status"] == "COMPLETED"
        group(tenant, "lab", "dev-0001")  # no longer followed
        assert pending(tokens["dev-0001"]) == []

    def test_joins_racing_the_creation_of_the_job_miss_no_device(
        self, database_url: str, tenant: str, register: Register, admin: Admin
    ) -> None:
        register(tenant, 40)
        group(tenant, "lab")

        def work(db: Database, i: int) -> Any:
            if i == 0:
                request = JobCreate(document_type="x", job_id="c", target_group_id="lab", target_selection="CONTINUOUS")
                return jobs_create.create(db, tenant, None, request)
            return groups.add_members(db, tenant, "lab", [f"dev-{(i - 1) * 2:04d}", f"dev-{(i - 1) * 2 + 1:04d}"])

        outcomes = [o.result for o in all_at_once(database_url, 21, work)]
        assert [o for o in outcomes if isinstance(o, Exception)] == []
        members = admin.execute(
            "SELECT count(*) AS n FROM device_group_members WHERE tenant_id = %s AND group_id = 'lab'", [tenant]
        ).fetchone()
        assert members == {"n": 40}
        assert len(statuses(tenant, "c")) == 40  # each member has its execution, whoever came first
