"""Push: the outbox written with every change of a device's queue head, drained into AWS IoT Jobs'
notify-next and notify messages; on real PostgreSQL, through the handlers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jobs_core.aws import notify
from jobs_core.domain import credentials, devices, notifications
from jobs_core.domain.notifications import Device, Notice
from jobs_core.domain.sweep import sweep
from jobs_core.store.db import Database
from tests.factories import Admin, CreateJob, Register
from tests.helpers import device_put, invoke, operator_claims


@pytest.fixture(autouse=True)
def _container(db: Database) -> None:
    """The handlers' database: the test database (the db fixture installs it)."""


class Collect:
    """A publisher that keeps what it is given (or fails, when told to)."""

    def __init__(self) -> None:
        self.notices: list[Notice] = []
        self.fail = False

    def __call__(self, notices: list[Notice]) -> None:
        if self.fail:
            raise notify.PublishFailed("broker away")
        self.notices.extend(notices)

    def of(self, tenant: str) -> dict[str, Notice]:
        """The last notice of each device of the tenant."""
        return {n.device.device_id: n for n in self.notices if n.device.tenant_id == tenant}


def drained(db: Database) -> Collect:
    collect = Collect()
    notifications.drain(db, collect)
    return collect


def outbox(admin: Admin, tenant: str) -> list[str]:
    rows = admin.execute("SELECT device_id FROM push_outbox WHERE tenant_id = %s ORDER BY id", [tenant]).fetchall()
    return [row["device_id"] for row in rows]


def op(tenant: str, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    return invoke(method, path, claims=operator_claims(tenant), **kwargs)


def test_a_new_job_tells_each_device_its_next_execution_with_the_document(
    db: Database, admin: Admin, tenant: str, register: Register, create_job: CreateJob
) -> None:
    register(tenant, 2)
    drained(db)
    create_job(tenant, job_id="fw", document_params={"version": "2.0"})
    assert sorted(outbox(admin, tenant)) == ["dev-0000", "dev-0001"]
    notices = drained(db).of(tenant)
    assert sorted(notices) == ["dev-0000", "dev-0001"]
    notice = notices["dev-0000"]
    assert notice.next is not None and notice.next["job_id"] == "fw" and notice.next["status"] == "QUEUED"
    assert [q["job_id"] for q in notice.queued] == ["fw"] and notice.in_progress == []
    assert outbox(admin, tenant) == []

    (next_topic, next_payload), (list_topic, list_payload) = notify.messages(notice)
    assert next_topic == f"iotjobs/{tenant}/things/dev-0000/jobs/notify-next"
    assert list_topic == f"iotjobs/{tenant}/things/dev-0000/jobs/notify"
    execution = json.loads(next_payload)["execution"]
    assert execution["jobId"] == "fw" and execution["thingName"] == "dev-0000" and execution["status"] == "QUEUED"
    assert execution["jobDocument"] == {"operation": "firmware", "version": "2.0"}  # an object, as AWS's MQTT API
    listed = json.loads(list_payload)["jobs"]
    assert [j["jobId"] for j in listed["QUEUED"]] == ["fw"] and listed["IN_PROGRESS"] == []


def test_claim_and_finish_are_told_a_progress_report_is_not(
    db: Database, admin: Admin, tenant: str, register: Register, create_job: CreateJob
) -> None:
    token = register(tenant, 1)["dev-0000"]
    create_job(tenant, job_id="a")
    create_job(tenant, job_id="b")
    drained(db)
    status, body = device_put("a", token, body={"status": "IN_PROGRESS"})
    assert status == 200, body
    assert outbox(admin, tenant) == ["dev-0000"]
    notice = drained(db).of(tenant)["dev-0000"]
    assert notice.next is not None and (notice.next["job_id"], notice.next["status"]) == ("a", "IN_PROGRESS")
    assert [e["job_id"] for e in notice.in_progress] == ["a"] and [e["job_id"] for e in notice.queued] == ["b"]

    status, body = device_put("a", token, body={"status": "IN_PROGRESS", "status_details": {"percent": "50"}})
    assert status == 200, body
    assert outbox(admin, tenant) == []  # a progress report changes no head

    status, body = device_put("a", token, body={"status": "SUCCEEDED"})
    assert status == 200, body
    notice = drained(db).of(tenant)["dev-0000"]
    assert notice.next is not None and (notice.next["job_id"], notice.next["status"]) == ("b", "QUEUED")

    device_put("b", token, body={"status": "IN_PROGRESS"})
    device_put("b", token, body={"status": "SUCCEEDED"})
    notice = drained(db).of(tenant)["dev-0000"]
    assert notice.next is None and notice.queued == [] and notice.in_progress == []
    assert json.loads(notify.messages(notice)[0][1]).keys() == {"timestamp"}  # nothing to do: no execution


def test_what_rolls_back_is_not_told(db: Database, admin: Admin, tenant: str, register: Register) -> None:
    register(tenant, 1)
    drained(db)
    status, body = op(
        tenant, "POST", "/customer/jobs", body={"document_type": "x", "targets": {"device_ids": ["nobody", "dev-0000"]}}
    )
    assert status == 404, body
    assert outbox(admin, tenant) == []


def test_a_failed_publish_keeps_the_batch_for_the_next_drain(
    db: Database, admin: Admin, tenant: str, register: Register, create_job: CreateJob
) -> None:
    register(tenant, 3)
    drained(db)
    create_job(tenant, job_id="fw")
    failing = Collect()
    failing.fail = True
    with pytest.raises(notify.PublishFailed):
        notifications.drain(db, failing)
    assert sorted(outbox(admin, tenant)) == ["dev-0000", "dev-0001", "dev-0002"]
    assert sorted(drained(db).of(tenant)) == ["dev-0000", "dev-0001", "dev-0002"]


def test_held_back_executions_are_told_when_released_and_a_cancel_tells_them_too(
    db: Database, admin: Admin, tenant: str, register: Register, create_job: CreateJob
) -> None:
    register(tenant, 4)
    drained(db)
    start = datetime.now(UTC) + timedelta(minutes=5)
    create_job(tenant, job_id="later", scheduling={"start_time": start.isoformat()})
    assert outbox(admin, tenant) == []  # nothing is due for anyone yet
    sweep(db, now=start + timedelta(seconds=1))
    assert sorted(drained(db).of(tenant)) == ["dev-0000", "dev-0001", "dev-0002", "dev-0003"]
    status, body = op(tenant, "DELETE", "/customer/jobs/later")
    assert status == 200, body
    notices = drained(db).of(tenant)
    assert sorted(notices) == ["dev-0000", "dev-0001", "dev-0002", "dev-0003"]
    assert all(n.next is None for n in notices.values())


def test_a_batch_tells_each_device_once_however_many_of_its_rows_it_took(
    db: Database, admin: Admin, tenant: str, register: Register, create_job: CreateJob
) -> None:
    register(tenant, 1)
    drained(db)
    for n in range(3):
        create_job(tenant, job_id=f"j{n}")
    assert outbox(admin, tenant) == ["dev-0000"] * 3
    collect = drained(db)
    assert [n.device.device_id for n in collect.notices if n.device.tenant_id == tenant] == ["dev-0000"]
    assert [q["job_id"] for q in collect.of(tenant)["dev-0000"].queued] == ["j0", "j1", "j2"]


def test_a_token_is_the_device_it_authenticates_until_it_is_revoked(
    db: Database, tenant: str, other_tenant: str, register: Register
) -> None:
    token = register(tenant, 1)["dev-0000"]
    other = register(other_tenant, 1)["dev-0000"]
    assert notifications.identify(db, token) == Device(tenant, "dev-0000")
    assert notifications.identify(db, other) == Device(other_tenant, "dev-0000")
    assert notifications.identify(db, "not-a-token") is None
    assert notifications.identify(db, "") is None
    credentials.revoke(db, tenant, "dev-0000")
    assert notifications.identify(db, token) is None
    devices.delete(db, other_tenant, "dev-0000")
    assert notifications.identify(db, other) is None


@pytest.mark.parametrize(
    ("topic_filter", "allowed"),
    [
        ("iotjobs/t1/things/d1/jobs", True),
        ("iotjobs/t1/things/d1/jobs/#", True),
        ("iotjobs/t1/things/d1/jobs/notify-next", True),
        ("iotjobs/t1/things/d1/jobs/+", True),
        ("iotjobs/t1/things/d1/jobs/+/x", True),
        ("iotjobs/t1/things/d1/#", False),
        ("iotjobs/t1/things/+/jobs/notify-next", False),
        ("iotjobs/+/things/d1/jobs/notify-next", False),
        ("iotjobs/#", False),
        ("#", False),
        ("iotjobs/t1/things/d10/jobs/notify", False),
        ("iotjobs/t1/things/d1/jobs/#/x", False),
        ("iotjobs/t1/things/d1/jobs/a#", False),
        ("$aws/things/d1/jobs/notify-next", False),
    ],
)
def test_a_device_subscribes_to_its_own_topics_only(topic_filter: str, allowed: bool) -> None:
    assert notifications.may_subscribe(Device("t1", "d1"), topic_filter) is allowed


def test_a_device_whose_topics_are_too_long_to_publish_gets_no_message() -> None:
    """AWS IoT Core refuses a topic over 256 bytes, every time: such a device (its ids 128
    characters each) is not published to, rather than holding its batch back for ever."""
    at = datetime.now(UTC)
    long = Notice(device=Device("t" * 128, "d" * 128), at=at, next=None, in_progress=[], queued=[])
    short = Notice(device=Device("t1", "d1"), at=at, next=None, in_progress=[], queued=[])
    assert notify.messages(long) == []
    sent: list[list[tuple[str, bytes]]] = []

    class Keep:
        def publish(self, batch: list[tuple[str, bytes]]) -> None:
            sent.append(batch)

        def close(self) -> None:
            pass

    notify.publish_notices(Keep(), [long, short])
    assert [topic for topic, _ in sent[0]] == [
        "iotjobs/t1/things/d1/jobs/notify-next",
        "iotjobs/t1/things/d1/jobs/notify",
    ]
