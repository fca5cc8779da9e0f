"""Every function is invoked with its file in events/, as `sam local invoke -e` would: the files
cannot rot. Only the credentials are swapped for ones this database knows."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from psycopg import pq

from jobs_core.store.db import Database
from jobs_local import template
from jobs_local.lambda_context import LocalContext
from tests.factories import Register, container_database
from tests.helpers import EVENTS


def run(function: str, event: dict[str, Any]) -> dict[str, Any]:
    props = template.functions()[function]["Properties"]
    module = __import__(props["Handler"].rsplit(".", 1)[0])
    result: dict[str, Any] = module.lambda_handler(event, LocalContext(function_name=function))
    return result


def event(name: str, *, token: str | None = None, tenant: str | None = None) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    if token is not None:
        loaded["headers"]["x-provision-token"] = token
    if tenant is not None:
        loaded["requestContext"]["authorizer"]["jwt"]["claims"]["tenant_id"] = tenant
    return loaded


def test_every_function_has_an_event_file() -> None:
    handlers = {props["Properties"]["Handler"].split(".")[0] for props in template.functions().values()}
    assert handlers == {path.stem for path in EVENTS.glob("*.json")}


def test_a_session_driven_by_the_event_files(tenant: str, register: Register) -> None:
    every_function_in_turn(tenant, register(tenant, 1)["dev-0000"])


def every_function_in_turn(tenant: str, token: str) -> None:
    """A device's and an operator's session through every function that touches data (but the
    migrations'), each with its event file."""
    created = run("OperatorCreateJobFunction", event("operator_create_job", tenant=tenant))
    assert created["statusCode"] == 201, created
    assert json.loads(created["body"])["job_id"] == "fw-2026-11"

    listed = run("OperatorListJobsFunction", event("operator_list_jobs", tenant=tenant))
    assert [job["job_id"] for job in json.loads(listed["body"])] == ["fw-2026-11"]

    detail = run("OperatorGetJobFunction", event("operator_get_job", tenant=tenant))
    assert json.loads(detail["body"])["counts"]["QUEUED"] == 1

    described = run("AwsIotFunction", event("aws_iot", tenant=tenant))
    assert json.loads(described["body"])["job"]["jobProcessDetails"]["numberOfQueuedThings"] == 1, described
    aws_pending = run("AwsJobsDataFunction", event("aws_jobs_data", token=token))
    assert [job["jobId"] for job in json.loads(aws_pending["body"])["queuedJobs"]] == ["fw-2026-11"], aws_pending

    pending = run("DeviceListPendingFunction", event("device_list_pending", token=token))
    assert [job["job_id"] for job in json.loads(pending["body"])["jobs"]] == ["fw-2026-11"]

    execution = run("DeviceGetExecutionFunction", event("device_get_execution", token=token))
    assert json.loads(execution["body"])["document"]["params"]["version"] == "2.1.0"

    claimed = run("DeviceUpdateExecutionFunction", event("device_update_execution", token=token))
    assert claimed["statusCode"] == 200, claimed
    assert json.loads(claimed["body"])["status"] == "IN_PROGRESS"

    started = run("DeviceStartNextFunction", event("device_start_next", token=token))
    assert json.loads(started["body"])["execution"]["job_id"] == "fw-2026-11"  # the one in progress

    canceled = run("OperatorCancelJobFunction", event("operator_cancel_job", tenant=tenant))
    assert json.loads(canceled["body"]) == {"job_id": "fw-2026-11", "status": "CANCELED"}

    read = run("OperatorGetExecutionFunction", event("operator_get_execution", tenant=tenant))
    assert json.loads(read["body"])["status"] == "IN_PROGRESS"  # a soft cancel leaves it running

    stopped = run("OperatorCancelExecutionFunction", event("operator_cancel_execution", tenant=tenant))
    assert json.loads(stopped["body"])["status"] == "CANCELED", stopped  # force=true in the event

    swept = run("SweepExpiredFunction", event("sweep_expired"))
    assert swept["skipped"] is False

    fleet_in_turn(tenant)


def fleet_in_turn(tenant: str) -> None:
    """The fleet's functions, each with its event file: a device registered and imported, a group
    built and taken apart, a token rotated and revoked, the device deleted."""

    def body(function: str, name: str, status: int = 200) -> Any:
        answer = run(function, event(name, tenant=tenant))
        assert answer["statusCode"] == status, answer
        return json.loads(answer["body"])

    registered = body("OperatorRegisterDeviceFunction", "operator_register_device", 201)
    assert registered["device_id"] == "dev-0100" and registered["token"]
    imported = body("OperatorImportDevicesFunction", "operator_import_devices", 201)
    assert [d["device_id"] for d in imported["devices"]] == ["dev-0101", "dev-0102"]
    assert body("OperatorPutGroupFunction", "operator_put_group", 201)["group_id"] == "lab"
    assert body("OperatorAddGroupMemberFunction", "operator_add_group_member")["changed"] is True
    assert body("OperatorAddGroupMembersFunction", "operator_add_group_members")["device_count"] == 2
    assert [d["device_id"] for d in body("OperatorListDevicesFunction", "operator_list_devices")] == [
        "dev-0100",
        "dev-0101",
    ]
    assert [g["group_id"] for g in body("OperatorListGroupsFunction", "operator_list_groups")] == ["lab"]
    assert body("OperatorGetGroupFunction", "operator_get_group")["device_count"] == 2
    assert body("OperatorRemoveGroupMemberFunction", "operator_remove_group_member")["changed"] is True
    assert body("OperatorUpdateDeviceFunction", "operator_update_device")["attributes"] == {
        "model": "s-200",
        "firmware": "2.1.0",
    }
    assert body("OperatorGetDeviceFunction", "operator_get_device")["version"] == 2
    assert body("OperatorRotateTokenFunction", "operator_rotate_token", 201)["token"] != registered["token"]
    assert body("OperatorRevokeTokenFunction", "operator_revoke_token")["revoked"] == 2
    assert body("OperatorDeleteGroupFunction", "operator_delete_group") == {"group_id": "lab", "removed_members": 1}
    assert body("OperatorDeleteDeviceFunction", "operator_delete_device")["device_id"] == "dev-0100"


# What RDS Proxy pins a client connection on, when it sees it in what the client sends (AWS's
# pinning rules for PostgreSQL): a SET or a set_config, transaction-local or not; prepared
# statements by name or by SQL; temporary objects, cursors, LISTEN, LOAD, DISCARD; sequence
# functions; session advisory locks (not the transaction-level ones). Not what runs inside a
# function: the proxy does not look there.
PINS = re.compile(
    r"^\s*(SET|RESET|DISCARD|PREPARE|EXECUTE|DEALLOCATE|LISTEN|UNLISTEN|DECLARE|LOAD)\b"
    r"|\bCREATE\s+(TEMP|TEMPORARY)\b"
    r"|\b(set_config|nextval|setval|pg_advisory_lock|pg_advisory_lock_shared|pg_try_advisory_lock"
    r"|pg_try_advisory_lock_shared|pg_advisory_unlock\w*)\s*\(",
    re.I,
)
# A message in libpq's trace: "F" (sent) or "B" (received), its length, its type, its fields; an
# SQL text keeps its line breaks, so a message runs until the next one starts.
MESSAGE = re.compile(r"^([FB])\t\d+\t(\w+)\t?(.*)", re.S)
PARSE = re.compile(r'^ "([^"]*)" "(.*)" \d+(?: \S+)*\s*$', re.S)
QUERY = re.compile(r'^ "(.*)"\s*$', re.S)


def sent_statements(trace: str) -> list[tuple[str, str]]:
    """(prepared statement name, SQL) of each statement a libpq trace shows the client sent."""
    sent = []
    for chunk in re.split(r"\n(?=[FB]\t\d+\t)", trace):
        found = MESSAGE.match(chunk)
        if found is None or found.group(1) != "F":
            continue
        kind, fields = found.group(2), found.group(3)
        if kind == "Parse":
            parsed = PARSE.match(fields)
            assert parsed is not None, chunk
            sent.append((parsed.group(1), parsed.group(2)))
        elif kind == "Query":
            queried = QUERY.match(fields)
            assert queried is not None, chunk
            sent.append(("", queried.group(1)))
    return sent


def test_nothing_the_functions_send_would_pin_an_rds_proxy_connection(
    database_url: str, tenant: str, register: Register, tmp_path: Path
) -> None:
    """Every statement of a session through every function, as libpq sent it to the server: an
    unnamed statement, with nothing in its text that RDS Proxy pins on."""
    token = register(tenant, 1)["dev-0000"]
    traced = Database(lambda refresh: database_url)
    trace = tmp_path / "libpq.trace"
    with trace.open("w") as out, container_database(traced):
        conn = traced.connection()
        conn.pgconn.trace(out.fileno())
        conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        every_function_in_turn(tenant, token)
        assert traced.connection() is conn  # every statement went over the traced connection
        conn.pgconn.untrace()
    traced.close()
    sent = sent_statements(trace.read_text())

    texts = " ".join(text for _, text in sent)
    for function in (
        "device_pending",
        "device_update",
        "device_start_next",
        "aws_",
        "open_transaction",
        "jobs",
        "device_tokens",
        "device_groups",
        "pg_advisory_xact_lock",
    ):
        assert function in texts, function  # the trace holds the session
    assert [name for name, _ in sent if name] == []
    assert [text for _, text in sent if PINS.search(text)] == []


def test_the_pinning_check_can_fail() -> None:
    trace = (
        "F\t60\tParse\t \"\" \"SELECT set_config('role', $1, true),\n set_config('x.y', $2, true)\" 0\n"
        'F\t14\tBind\t "" "" 0 0 1 0\n'
        'F\t30\tParse\t "_pg3_0" "SELECT * FROM f($1)" 1 NNNN\n'
        "B\t5\tParseComplete\n"
        'F\t16\tQuery\t "SET x.y = 1"\n'
        'F\t40\tQuery\t "SELECT pg_try_advisory_xact_lock(1)"\n'
    )
    sent = sent_statements(trace)
    assert [name for name, _ in sent] == ["", "_pg3_0", "", ""]
    assert [bool(PINS.search(text)) for _, text in sent] == [True, False, True, False]


def test_the_console_page_is_served_with_its_policy() -> None:
    served = run("OperatorConsoleFunction", event("operator_console"))
    assert served["statusCode"] == 200, served
    headers = {k.lower(): v for k, v in served["headers"].items()}
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert "script-src 'self'" in headers["content-security-policy"]
    assert '<script src="/console/app.js" defer></script>' in served["body"]
