"""A second tenant probes the first on every route: only 404 or 403 and none of its data. And a
full session's logs carry no token, JWT or secret."""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from psycopg.conninfo import make_conninfo

from jobs_core.domain import devices, executions, groups, jobs_create, jobs_read
from jobs_core.domain.fleet_models import DeviceUpdate
from jobs_core.domain.job_settings import JobCreate
from jobs_core.domain.models import ExecutionUpdate
from jobs_core.store.db import Database
from jobs_local import devjwt
from tests.conftest import local_server
from tests.factories import CreateJob, Register
from tests.helpers import hintless, invoke, operator_claims


def test_a_second_tenant_gets_only_404_or_403_on_every_route(
    db: Database, tenant: str, other_tenant: str, register: Register, create_job: CreateJob
) -> None:
    victim = register(tenant, 2)
    attacker = register(other_tenant, 1)["dev-0000"]
    same_tenant_other_device = victim["dev-0001"]
    create_job(tenant, job_id="target", target_device_id="dev-0000", document_params={"secret": "s3cr3t-param"})
    executions.update(
        db, victim["dev-0000"], "target", ExecutionUpdate(status="IN_PROGRESS", status_details={"x": "s3cr3t-detail"})
    )
    them = operator_claims(other_tenant)
    probes: list[tuple[str, int, Any]] = []

    def probe(name: str, method: str, path: str, **kwargs: Any) -> None:
        status, body = invoke(method, path, **kwargs)
        probes.append((name, status, body))

    for device_token in (attacker, same_tenant_other_device):
        probe("read execution", "GET", "/device/v1/jobs/target/execution", token=device_token)
        for status in ("IN_PROGRESS", "SUCCEEDED", "FAILED", "REJECTED"):
            probe(
                f"set {status}", "PUT", "/device/v1/jobs/target/execution", token=device_token, body={"status": status}
            )
        probe("pending", "GET", "/device/v1/jobs/pending", token=device_token)
    probe("read job", "GET", "/customer/jobs/target", claims=them)
    probe("cancel job", "DELETE", "/customer/jobs/target", claims=them)
    probe("list jobs", "GET", "/customer/jobs", claims=them)
    probe(
        "create for their device",
        "POST",
        "/customer/jobs",
        claims=them,
        body={"document_type": "x", "target_device_id": "dev-0001"},
    )
    probe("no tenant claim", "GET", "/customer/jobs/target", claims=operator_claims(None))
    groups.add_to_group(db, tenant, "victims", ["dev-0001"])
    devices.update(db, tenant, "dev-0001", DeviceUpdate(attributes={"secret": "s3cr3t-attribute"}))
    for method, path, body in [
        ("GET", "/customer/devices/dev-0001", None),
        ("PATCH", "/customer/devices/dev-0001", {"attributes": {"owned": "yes"}}),
        ("DELETE", "/customer/devices/dev-0001", None),
        ("POST", "/customer/devices/dev-0001/token", {"previous_valid_minutes": 1440}),
        ("DELETE", "/customer/devices/dev-0001/token", None),
        ("GET", "/customer/groups/victims", None),
        ("PUT", "/customer/groups/victims/devices/dev-0001", None),
        ("DELETE", "/customer/groups/victims/devices/dev-0001", None),
        ("POST", "/customer/groups/victims/devices", {"device_ids": ["dev-0001"]}),
        ("DELETE", "/customer/groups/victims", None),
    ]:
        probe(f"fleet {method} {path}", method, path, claims=them, body=body)
    probe("list devices of their group", "GET", "/customer/devices", claims=them, query="group_id=victims")
    probe("list devices", "GET", "/customer/devices", claims=them)
    probe("list groups", "GET", "/customer/groups", claims=them)

    leaks = [p for p in probes if any(word in json.dumps(p[2]) for word in ("s3cr3t", tenant))]
    refusals = [p for p in probes if p[0] not in ("pending", "list jobs", "list devices", "list groups")]
    assert not leaks, leaks
    assert [p for p in refusals if p[1] not in (403, 404)] == []
    assert [hintless(body) for name, _, body in probes if name == "pending"] == [{"jobs": []}, {"jobs": []}]
    assert [body for name, _, body in probes if name in ("list jobs", "list groups")] == [[], []]
    assert [[d["device_id"] for d in body] for name, _, body in probes if name == "list devices"] == [["dev-0000"]]
    detail = jobs_read.detail(db, tenant, "target", 10, None)
    assert detail.status == "IN_PROGRESS" and detail.executions[0].status == "IN_PROGRESS"  # untouched
    victim_device = devices.describe(db, tenant, "dev-0001")
    assert victim_device.groups == ["victims"] and victim_device.attributes == {"secret": "s3cr3t-attribute"}
    print(f"\nprobes: {len(probes)} run, {len(leaks)} leaks")


def test_a_full_sessions_logs_hold_no_token_jwt_or_secret(env: dict[str, str], tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    # trust auth ignores the password: it is here only to show it never reaches a log line
    secret_env = {**env, "DATABASE_URL": make_conninfo(env["DATABASE_URL"], password="canary-password-value")}
    with local_server(secret_env, log) as base:
        db = Database(lambda refresh: env["DATABASE_URL"])
        tenant = f"logs-{base.rsplit(':', 1)[1]}"
        token = devices.register(db, tenant, ["d1"])["d1"]
        jwt = devjwt.mint(tenant, "alice")
        jobs_create.create(db, tenant, "alice", JobCreate(job_id="j", document_type="x", target_all=True))
        db.close()

        def call(method: str, path: str, headers: dict[str, str], body: Any = None) -> Any:
            data = json.dumps(body).encode() if body else None
            request = urllib.request.Request(base + path, method=method, data=data)  # noqa: S310
            for name, value in {**headers, "Content-Type": "application/json"}.items():
                request.add_header(name, value)
            # refusals are part of the session
            with contextlib.suppress(urllib.error.HTTPError), urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
                return json.loads(answer.read() or b"null")
            return None

        device, operator = {"X-Provision-Token": token}, {"Authorization": f"Bearer {jwt}"}
        call("GET", "/device/v1/jobs/pending", device)
        call("PUT", "/device/v1/jobs/j/execution", device, {"status": "IN_PROGRESS"})
        call("PUT", "/device/v1/jobs/j/execution", device, {"status": "BOGUS"})
        call("PUT", "/device/v1/jobs/j/execution", {"X-Provision-Token": token + "x"}, {"status": "SUCCEEDED"})
        call("GET", "/customer/jobs", operator)
        call("GET", "/customer/jobs/j?cursor=bad", operator)
        call("DELETE", "/customer/jobs/j", operator, {"reason": "done"})
        call("GET", "/customer/jobs", {"Authorization": f"Bearer {jwt}x"})
        issued = [
            call("POST", "/customer/devices", operator, {"device_id": "d2"})["token"],
            call("POST", "/customer/devices/import", operator, {"devices": [{"device_id": "d3"}]})["devices"][0][
                "token"
            ],
            call("POST", "/customer/devices/d2/token", operator, {"previous_valid_minutes": 5})["token"],
        ]
        call("DELETE", "/customer/devices/d2/token", operator)
    text = log.read_text()
    assert "GET /device/v1/jobs/pending" in text  # the log did capture the session
    assert "POST /customer/devices/d2/token" in text
    for secret in (token, *issued, jwt, jwt.split(".")[2], "canary-password-value"):
        assert secret not in text
