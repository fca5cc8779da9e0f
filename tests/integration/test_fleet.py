"""The fleet through the operator API: devices, their tokens, groups; through the handlers, on
real PostgreSQL, with claims as the JWT authorizer passes them."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest

from bench.instruments import all_at_once
from jobs_core.domain import credentials, devices, executions, groups, jobs_create
from jobs_core.domain.fleet_models import DeviceToken, TokenRotate
from jobs_core.domain.job_settings import JobCreate
from jobs_core.domain.models import ExecutionUpdate
from jobs_core.domain.sweep import sweep
from jobs_core.errors import JobsError, NotFound
from jobs_core.store.db import Database
from jobs_local.invoke import request
from tests.factories import Admin, CreateJob, Register
from tests.helpers import device_put, hintless, invoke, operator_claims


def at_once(database_url: str, n: int, work: Callable[[Database, int], Any]) -> list[Any]:
    """work(db, i) on n containers released together, each with its own connection."""
    return [outcome.result for outcome in all_at_once(database_url, n, work)]


@pytest.fixture(autouse=True)
def _container(db: Database) -> None:
    """The handlers' database: the test database (the db fixture installs it)."""


def op(tenant: str, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    return invoke(method, path, claims=operator_claims(tenant), **kwargs)


def pages(tenant: str, path: str, query: str = "") -> list[list[dict[str, Any]]]:
    """Every page of a list route, following X-Next-Cursor."""
    out: list[list[dict[str, Any]]] = []
    cursor = None
    while True:
        q = "&".join(part for part in (query, f"cursor={cursor}" if cursor else "") if part)
        reply = request("GET", f"{path}?{q}", claims=operator_claims(tenant)).send()
        assert reply.status == 200, reply.body
        out.append(json.loads(reply.body))
        cursor = reply.headers.get("X-Next-Cursor")
        if cursor is None:
            return out


def pending(token: str) -> tuple[int, Any]:
    return invoke("GET", "/device/v1/jobs/pending", token=token)


class TestRegister:
    def test_one_device_gets_a_working_token_shown_once(self, tenant: str, admin: Admin) -> None:
        status, body = op(
            tenant, "POST", "/customer/devices", body={"device_id": "cam-1", "attributes": {"model": "s-200"}}
        )
        assert status == 201, body
        assert set(body) == {"device_id", "token", "attributes", "created_at"}
        assert body["attributes"] == {"model": "s-200"} and body["created_at"].endswith("+00:00")
        assert hintless(pending(body["token"])[1]) == {"jobs": []}
        stored = json.dumps(
            admin.execute("SELECT * FROM device_tokens WHERE device_id = 'cam-1'").fetchall(), default=str
        )
        assert body["token"] not in stored  # only its hash
        status, again = op(tenant, "POST", "/customer/devices", body={"device_id": "cam-1"})
        assert status == 409 and "cam-1" in again["message"]
        status, read = op(tenant, "GET", "/customer/devices/cam-1")
        assert status == 200 and read["token"]["issued_at"] is not None
        assert body["token"] not in json.dumps(read) and credentials.token_hash(body["token"]) not in json.dumps(read)

    def test_import_is_all_or_nothing(self, tenant: str, register: Register) -> None:
        register(tenant, 1, prefix="old")
        devices: list[dict[str, Any]] = [{"device_id": f"new-{i:04d}"} for i in range(999)] + [
            {"device_id": "old-0000"}
        ]
        status, body = op(tenant, "POST", "/customer/devices/import", body={"devices": devices})
        assert status == 409 and "old-0000" in body["message"]
        assert op(tenant, "GET", "/customer/devices/new-0000")[0] == 404  # nothing registered

        devices[-1] = {"device_id": "new-0999", "attributes": {"site": "lab"}}
        status, body = op(tenant, "POST", "/customer/devices/import", body={"devices": devices})
        assert status == 201
        assert [d["device_id"] for d in body["devices"]] == [f"new-{i:04d}" for i in range(1000)]
        assert pending(body["devices"][-1]["token"])[0] == 200

    @pytest.mark.parametrize(
        ("body", "status"),
        [
            ({"devices": [{"device_id": f"d{i}"} for i in range(1001)]}, 422),
            ({"devices": [{"device_id": "ok"}, {"device_id": "not ok"}]}, 422),
            ({"devices": [{"device_id": "twice"}, {"device_id": "twice"}]}, 400),
            ({"devices": []}, 422),
            ({"devices": [{"device_id": "a", "attributes": {f"k{i}": "v" for i in range(51)}}]}, 422),
            ({"devices": [{"device_id": "a", "attributes": {"k": "v" * 801}}]}, 422),
            ({"devices": [{"device_id": "a", "attributes": {"bad name": "v"}}]}, 422),
            ({"devices": [{"device_id": "a", "attributes": {"k": 1}}]}, 422),
            ({"devices": [{"device_id": "a", "attributes": {"k": {"nested": "x"}}}]}, 422),
            ({"devices": [{"device_id": "a", "token": "chosen"}]}, 422),
        ],
    )
    def test_bad_input_registers_nothing(self, tenant: str, admin: Admin, body: Any, status: int) -> None:
        got, answer = op(tenant, "POST", "/customer/devices/import", body=body)
        assert got == status and "message" in answer
        assert admin.execute("SELECT count(*) AS n FROM device_state WHERE tenant_id = %s", [tenant]).fetchone() == {
            "n": 0
        }

    def test_fifty_attributes_of_800_characters_are_fine(self, tenant: str) -> None:
        attributes = {f"name.{i}@x/y:z#-_,": "v" * 800 for i in range(50)}
        status, body = op(tenant, "POST", "/customer/devices", body={"device_id": "big", "attributes": attributes})
        assert status == 201 and body["attributes"] == attributes


class TestListAndDescribe:
    def test_pages_by_id_with_filters(self, db: Database, tenant: str, other_tenant: str) -> None:
        devices = [{"device_id": f"d-{i:03d}", "attributes": {"model": "a" if i % 3 else "b"}} for i in range(250)]
        assert op(tenant, "POST", "/customer/devices/import", body={"devices": devices})[0] == 201
        assert op(other_tenant, "POST", "/customer/devices", body={"device_id": "d-000"})[0] == 201
        got = pages(tenant, "/customer/devices", "limit=100")
        assert [len(p) for p in got] == [100, 100, 50]
        assert [d["device_id"] for p in got for d in p] == [f"d-{i:03d}" for i in range(250)]
        by_model = [d["device_id"] for p in pages(tenant, "/customer/devices", "attribute=model:b&limit=30") for d in p]
        assert by_model == [f"d-{i:03d}" for i in range(0, 250, 3)]
        groups.add_to_group(db, tenant, "odd", [f"d-{i:03d}" for i in range(1, 250, 2)])
        in_group = [d["device_id"] for p in pages(tenant, "/customer/devices", "group_id=odd&limit=7") for d in p]
        assert in_group == [f"d-{i:03d}" for i in range(1, 250, 2)]
        both = pages(tenant, "/customer/devices", "group_id=odd&attribute=model:b")
        assert [d["device_id"] for p in both for d in p] == [f"d-{i:03d}" for i in range(3, 250, 6)]
        assert op(tenant, "GET", "/customer/devices", query="group_id=nope")[0] == 404
        assert op(tenant, "GET", "/customer/devices", query="attribute=nocolon")[0] == 400
        assert op(tenant, "GET", "/customer/devices", query="cursor=%21%21")[0] == 400
        assert op(tenant, "GET", "/customer/devices", query="limit=1001")[0] == 422

    def test_describe_shows_groups_and_token_state_and_never_a_token(self, db: Database, tenant: str) -> None:
        status, made = op(tenant, "POST", "/customer/devices", body={"device_id": "cam-1"})
        groups.add_to_group(db, tenant, "b-group", ["cam-1"])
        groups.add_to_group(db, tenant, "a-group", ["cam-1"])
        status, body = op(tenant, "GET", "/customer/devices/cam-1")
        assert status == 200
        assert body["groups"] == ["a-group", "b-group"] and body["version"] == 1
        assert body["token"]["issued_at"] is not None and body["token"]["previous_valid_until"] is None
        assert made["token"] not in json.dumps(body)
        assert op(tenant, "GET", "/customer/devices/nope")[0] == 404

    def test_another_tenants_device_is_404_everywhere(self, tenant: str, other_tenant: str) -> None:
        op(other_tenant, "POST", "/customer/devices", body={"device_id": "theirs"})
        op(other_tenant, "PUT", "/customer/groups/their-group")
        for method, path in [
            ("GET", "/customer/devices/theirs"),
            ("PATCH", "/customer/devices/theirs"),
            ("DELETE", "/customer/devices/theirs"),
            ("POST", "/customer/devices/theirs/token"),
            ("DELETE", "/customer/devices/theirs/token"),
            ("GET", "/customer/groups/their-group"),
            ("DELETE", "/customer/groups/their-group"),
            ("GET", "/customer/devices?group_id=their-group"),
        ]:
            path, _, query = path.partition("?")
            body = {"attributes": {"x": "y"}} if method == "PATCH" else None
            assert op(tenant, method, path, body=body, query=query)[0] == 404, (method, path)
        assert op(other_tenant, "GET", "/customer/devices/theirs")[0] == 200


class TestUpdate:
    def test_merges_and_removes_at_a_version(self, tenant: str) -> None:
        op(tenant, "POST", "/customer/devices", body={"device_id": "cam-1", "attributes": {"a": "1", "b": "2"}})
        status, body = op(tenant, "PATCH", "/customer/devices/cam-1", body={"attributes": {"b": None, "c": "3"}})
        assert status == 200 and body["attributes"] == {"a": "1", "c": "3"} and body["version"] == 2
        status, body = op(tenant, "PATCH", "/customer/devices/cam-1", body={"attributes": {"a": "x"}, "version": 1})
        assert status == 409
        status, body = op(tenant, "PATCH", "/customer/devices/cam-1", body={"attributes": {"a": "x"}, "version": 2})
        assert status == 200 and body["attributes"] == {"a": "x", "c": "3"}

    def test_never_past_fifty_attributes(self, tenant: str) -> None:
        op(
            tenant,
            "POST",
            "/customer/devices",
            body={"device_id": "cam-1", "attributes": {f"a{i}": "v" for i in range(30)}},
        )
        status, body = op(
            tenant, "PATCH", "/customer/devices/cam-1", body={"attributes": {f"b{i}": "v" for i in range(21)}}
        )
        assert status == 400 and "51" in body["message"]
        status, body = op(tenant, "GET", "/customer/devices/cam-1")
        assert len(body["attributes"]) == 30 and body["version"] == 1


class TestTokens:
    def test_rotation_with_an_overlap_then_only_the_new_one(self, tenant: str, admin: Admin) -> None:
        old = op(tenant, "POST", "/customer/devices", body={"device_id": "cam-1"})[1]["token"]
        status, body = op(tenant, "POST", "/customer/devices/cam-1/token", body={"previous_valid_minutes": 5})
        assert status == 201 and set(body) == {"device_id", "token"}
        new = body["token"]
        assert pending(old)[0] == 200 and pending(new)[0] == 200  # both, during the overlap
        state = op(tenant, "GET", "/customer/devices/cam-1")[1]["token"]
        assert state["previous_valid_until"] is not None
        # the overlap ends by itself, no schedule involved: as if the five minutes had passed
        admin.execute(
            "UPDATE device_tokens SET expires_at = now() - %s WHERE device_id = 'cam-1' AND expires_at IS NOT NULL",
            [timedelta(seconds=1)],
        )
        assert pending(old)[0] == 401 and pending(new)[0] == 200

    def test_rotation_without_overlap_and_twice(self, tenant: str) -> None:
        first = op(tenant, "POST", "/customer/devices", body={"device_id": "cam-1"})[1]["token"]
        second = op(tenant, "POST", "/customer/devices/cam-1/token")[1]["token"]
        assert pending(first)[0] == 401 and pending(second)[0] == 200
        third = op(tenant, "POST", "/customer/devices/cam-1/token", body={"previous_valid_minutes": 60})[1]["token"]
        fourth = op(tenant, "POST", "/customer/devices/cam-1/token", body={"previous_valid_minutes": 60})[1]["token"]
        # at most two: the one the last rotation replaced, and the new one
        assert [pending(t)[0] for t in (second, third, fourth)] == [401, 200, 200]

    def test_revoke_then_issue(self, tenant: str) -> None:
        token = op(tenant, "POST", "/customer/devices", body={"device_id": "cam-1"})[1]["token"]
        op(tenant, "POST", "/customer/devices/cam-1/token", body={"previous_valid_minutes": 60})
        assert op(tenant, "DELETE", "/customer/devices/cam-1/token") == (200, {"device_id": "cam-1", "revoked": 2})
        assert pending(token)[0] == 401
        assert op(tenant, "GET", "/customer/devices/cam-1")[1]["token"] == {
            "issued_at": None,
            "previous_valid_until": None,
        }
        fresh = op(tenant, "POST", "/customer/devices/cam-1/token")[1]["token"]
        assert pending(fresh)[0] == 200

    @pytest.mark.parametrize("minutes", [-1, 1441, "5", 1.5, None])
    def test_bad_overlap_is_422(self, tenant: str, minutes: Any) -> None:
        token = op(tenant, "POST", "/customer/devices", body={"device_id": "cam-1"})[1]["token"]
        status, _ = op(tenant, "POST", "/customer/devices/cam-1/token", body={"previous_valid_minutes": minutes})
        assert status == 422 and pending(token)[0] == 200

    def test_concurrent_rotations_leave_at_most_two_tokens(self, database_url: str, tenant: str, admin: Admin) -> None:
        op(tenant, "POST", "/customer/devices", body={"device_id": "cam-1"})
        outcomes = at_once(
            database_url,
            8,
            lambda db, i: credentials.rotate(db, tenant, "cam-1", TokenRotate(previous_valid_minutes=10)),
        )
        assert all(isinstance(o, DeviceToken) for o in outcomes), outcomes
        assert [pending(o.token)[0] for o in outcomes].count(200) == 2
        rows = admin.execute("SELECT count(*) AS n FROM device_tokens WHERE tenant_id = %s", [tenant]).fetchone()
        assert rows == {"n": 2}


class TestDelete:
    def test_ends_what_it_had_not_finished_and_its_jobs_complete(
        self, db: Database, tenant: str, register: Register, create_job: CreateJob
    ) -> None:
        tokens = register(tenant, 3)
        groups.add_to_group(db, tenant, "lab", list(tokens))
        create_job(tenant, job_id="a", target_device_id="dev-0000")  # only the deleted device: completes
        create_job(tenant, job_id="b")  # every device: goes on
        create_job(tenant, job_id="c", target_device_id="dev-0000")
        assert device_put("c", tokens["dev-0000"], body={"status": "IN_PROGRESS"})[0] == 200
        create_job(tenant, job_id="d", target_device_id="dev-0000")
        assert device_put("d", tokens["dev-0000"], body={"status": "IN_PROGRESS"})[0] == 200
        assert device_put("d", tokens["dev-0000"], body={"status": "SUCCEEDED"})[0] == 200

        status, body = op(tenant, "DELETE", "/customer/devices/dev-0000")
        assert status == 200 and body == {"device_id": "dev-0000", "removed_executions": 3}
        assert pending(tokens["dev-0000"])[0] == 401  # at once
        jobs = {j: op(tenant, "GET", f"/customer/jobs/{j}")[1] for j in "abcd"}
        assert jobs["a"]["status"] == "COMPLETED" and jobs["a"]["counts"]["REMOVED"] == 1
        assert jobs["b"]["status"] == "IN_PROGRESS"
        assert jobs["b"]["counts"]["REMOVED"] == 1 and jobs["b"]["counts"]["QUEUED"] == 2
        assert jobs["c"]["status"] == "COMPLETED"  # its IN_PROGRESS execution ended too
        assert jobs["d"]["counts"]["SUCCEEDED"] == 1 and jobs["d"]["counts"]["REMOVED"] == 0  # terminal stays
        removed = op(tenant, "GET", "/customer/jobs/c/executions/dev-0000")[1]
        assert removed["status"] == "REMOVED" and removed["status_details"] == {"reason": "device deleted"}
        assert op(tenant, "GET", "/customer/groups/lab")[1]["device_count"] == 2
        assert op(tenant, "GET", "/customer/devices/dev-0000")[0] == 404
        assert op(tenant, "DELETE", "/customer/devices/dev-0000")[0] == 404
        # the id may be registered again, as a new device with none of the old one's work
        token = op(tenant, "POST", "/customer/devices", body={"device_id": "dev-0000"})[1]["token"]
        assert hintless(pending(token)[1]) == {"jobs": []}

    def test_a_scheduled_job_whose_devices_all_left_completes_when_it_starts(
        self, db: Database, tenant: str, register: Register, create_job: CreateJob
    ) -> None:
        register(tenant, 2)
        start = datetime.now(UTC) + timedelta(minutes=2)
        create_job(tenant, job_id="later", scheduling={"start_time": start.isoformat()})
        for device in ("dev-0000", "dev-0001"):
            assert op(tenant, "DELETE", f"/customer/devices/{device}")[0] == 200
        assert op(tenant, "GET", "/customer/jobs/later")[1]["status"] == "SCHEDULED"
        sweep(db, now=start + timedelta(minutes=1))
        job = op(tenant, "GET", "/customer/jobs/later")[1]
        assert job["status"] == "COMPLETED" and job["counts"]["REMOVED"] == 2

    def test_racing_its_device_updates_counts_stay_exact(
        self, database_url: str, tenant: str, register: Register, create_job: CreateJob, admin: Admin
    ) -> None:
        tokens = register(tenant, 20)
        for j in range(10):
            create_job(tenant, job_id=f"j{j}")
        devices_in_turn = list(tokens)

        def work(db: Database, i: int) -> Any:
            if i >= 20:  # ten containers delete every other device while the devices work
                return devices.delete(db, tenant, f"dev-{(i - 20) * 2:04d}")
            for j in range(10):
                with contextlib.suppress(JobsError):  # 401 once deleted: refused, not an error
                    executions.update(db, tokens[devices_in_turn[i]], f"j{j}", ExecutionUpdate(status="IN_PROGRESS"))
            return None

        outcomes = at_once(database_url, 30, work)
        assert [o for o in outcomes if isinstance(o, Exception)] == []
        recount = admin.execute(
            "SELECT job_id, status, count(*) AS n FROM job_executions WHERE tenant_id = %s GROUP BY 1, 2", [tenant]
        ).fetchall()
        for j in range(10):
            counts = op(tenant, "GET", f"/customer/jobs/j{j}")[1]["counts"]
            expected = {r["status"]: r["n"] for r in recount if r["job_id"] == f"j{j}"}
            assert {k: v for k, v in counts.items() if v} == expected
            assert expected.get("REMOVED", 0) == 10
        assert active_without_a_device(admin, tenant) == 0

    def test_racing_the_fan_out_leaves_no_active_execution_behind(
        self, database_url: str, tenant: str, register: Register, admin: Admin
    ) -> None:
        register(tenant, 200)

        def work(db: Database, i: int) -> Any:
            if i < 6:
                return jobs_create.create(db, tenant, None, JobCreate(document_type="x", target_all=True))
            return devices.delete(db, tenant, f"dev-{(i - 6) * 10:04d}")

        outcomes = at_once(database_url, 26, work)
        assert [o for o in outcomes if isinstance(o, Exception)] == []
        assert active_without_a_device(admin, tenant) == 0


def ids(lo: int, hi: int) -> list[str]:
    return [f"dev-{i:04d}" for i in range(lo, hi)]


def active_without_a_device(admin: Admin, tenant: str) -> int:
    """Executions not terminal whose device is gone: what a deletion must never leave behind."""
    row = admin.execute(
        "SELECT count(*) AS n FROM job_executions e WHERE tenant_id = %s"
        " AND status IN ('UNRELEASED', 'QUEUED', 'IN_PROGRESS') AND NOT EXISTS"
        " (SELECT 1 FROM device_state d WHERE d.tenant_id = e.tenant_id AND d.device_id = e.device_id)",
        [tenant],
    ).fetchone()
    assert row is not None
    return int(row["n"])


class TestGroups:
    def test_create_update_describe_list_delete(self, tenant: str, register: Register) -> None:
        register(tenant, 3)
        assert op(tenant, "PUT", "/customer/groups/lab", body={"description": "bench"})[0] == 201
        status, body = op(tenant, "PUT", "/customer/groups/lab", body={"description": "the bench"})
        assert status == 200 and body["description"] == "the bench" and body["device_count"] == 0
        assert op(tenant, "PUT", "/customer/groups/empty")[0] == 201
        assert op(tenant, "PUT", "/customer/groups/lab/devices/dev-0000")[1]["changed"] is True
        assert op(tenant, "PUT", "/customer/groups/lab/devices/dev-0000") == (
            200,
            {"group_id": "lab", "device_id": "dev-0000", "changed": False},
        )
        status, body = op(tenant, "POST", "/customer/groups/lab/devices", body={"device_ids": ["dev-0000", "dev-0001"]})
        assert status == 200 and body == {"group_id": "lab", "added": 1, "device_count": 2}
        assert op(tenant, "GET", "/customer/groups/lab")[1]["device_count"] == 2
        listed = [g["group_id"] for p in pages(tenant, "/customer/groups", "limit=1") for g in p]
        assert listed == ["empty", "lab"]
        assert op(tenant, "DELETE", "/customer/groups/lab/devices/dev-0001")[0] == 200
        assert op(tenant, "DELETE", "/customer/groups/lab/devices/dev-0001")[0] == 404  # not a member
        assert op(tenant, "DELETE", "/customer/groups/lab/devices/dev-9999")[0] == 404
        assert op(tenant, "GET", "/customer/groups/lab")[1]["device_count"] == 1
        assert op(tenant, "DELETE", "/customer/groups/lab") == (200, {"group_id": "lab", "removed_members": 1})
        assert op(tenant, "GET", "/customer/groups/lab")[0] == 404
        assert op(tenant, "GET", "/customer/devices/dev-0000")[1]["groups"] == []

    def test_bulk_add_is_all_or_nothing(self, tenant: str, register: Register) -> None:
        register(tenant, 3)
        op(tenant, "PUT", "/customer/groups/lab")
        status, body = op(
            tenant, "POST", "/customer/groups/lab/devices", body={"device_ids": ["dev-0000", "ghost", "dev-0001"]}
        )
        assert status == 404 and "ghost" in body["message"]
        assert op(tenant, "GET", "/customer/groups/lab")[1]["device_count"] == 0
        assert op(tenant, "POST", "/customer/groups/nope/devices", body={"device_ids": ["dev-0000"]})[0] == 404
        assert op(tenant, "PUT", "/customer/groups/nope/devices/dev-0000")[0] == 404
        too_many = {"device_ids": [f"d{i}" for i in range(1001)]}
        assert op(tenant, "POST", "/customer/groups/lab/devices", body=too_many)[0] == 422
        assert op(tenant, "PUT", "/customer/groups/not%20ok")[0] in (404, 422)
        assert op(tenant, "PUT", "/customer/groups/lab", body={"description": "x" * 2029})[0] == 422

    def test_a_group_job_keeps_its_executions_when_the_group_goes(self, tenant: str, register: Register) -> None:
        register(tenant, 2)
        op(tenant, "PUT", "/customer/groups/lab")
        op(tenant, "POST", "/customer/groups/lab/devices", body={"device_ids": ["dev-0000", "dev-0001"]})
        assert (
            op(tenant, "POST", "/customer/jobs", body={"job_id": "g", "document_type": "x", "target_group_id": "lab"})[
                0
            ]
            == 201
        )
        assert op(tenant, "DELETE", "/customer/groups/lab")[0] == 200
        assert op(tenant, "GET", "/customer/jobs/g")[1]["counts"]["QUEUED"] == 2

    def test_counts_stay_exact_under_concurrent_adds_removes_and_deletes(
        self, database_url: str, tenant: str, register: Register, admin: Admin
    ) -> None:
        register(tenant, 60)
        for g in ("a", "b", "c"):
            op(tenant, "PUT", f"/customer/groups/{g}")
        work: list[Callable[[Database], Any]] = []
        for g in ("a", "b", "c"):
            for lo in (0, 15, 30):
                work.append(partial(groups.add_members, tenant_id=tenant, group_id=g, device_ids=ids(lo, lo + 30)))
        for g in ("a", "b"):
            for i in range(0, 40, 7):
                work.append(partial(groups.remove_member, tenant_id=tenant, group_id=g, device_id=f"dev-{i:04d}"))
        for i in range(5, 60, 11):
            work.append(partial(devices.delete, tenant_id=tenant, device_id=f"dev-{i:04d}"))

        outcomes = at_once(database_url, len(work), lambda db, i: work[i](db))
        assert [o for o in outcomes if isinstance(o, Exception) and not isinstance(o, NotFound)] == []
        for g in ("a", "b", "c"):
            counted = admin.execute(
                "SELECT count(*) AS n FROM device_group_members WHERE tenant_id = %s AND group_id = %s", [tenant, g]
            ).fetchone()
            assert counted is not None
            assert op(tenant, "GET", f"/customer/groups/{g}")[1]["device_count"] == counted["n"]
