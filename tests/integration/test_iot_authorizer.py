"""AWS IoT Core's custom authorizer (functions/iot_authorizer): a device's MQTT CONNECT, with its
provision token as the password, gets a policy for its own topics and nothing else; anything else
is refused, never raised. On real PostgreSQL, the handler invoked in-process with its event file."""

from __future__ import annotations

import base64
import importlib
import json
import logging
import re
from collections.abc import Callable
from fnmatch import fnmatchcase
from typing import Any

import pytest

from jobs_core.aws import iot_authorizer as authorizer
from jobs_core.aws import notify
from jobs_core.domain import credentials, notifications
from jobs_core.domain.fleet_models import TokenRotate
from jobs_core.domain.notifications import Device
from jobs_core.errors import DatabaseUnavailable
from jobs_core.store.db import Database
from jobs_local import template
from jobs_local.lambda_context import LocalContext
from tests.factories import CreateJob, Register, container_database
from tests.helpers import EVENTS

ACCOUNT = "000000000000"  # LocalContext's function ARN: arn:aws:lambda:us-east-1:000000000000:function:...
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


@pytest.fixture(autouse=True)
def _container(db: Database) -> None:
    """The handler's database: the test database (the db fixture installs it)."""


def handler() -> Handler:
    """The handler the template names for the authorizer function, as Lambda would load it."""
    module_name, function = template.functions()["IotAuthorizerFunction"]["Properties"]["Handler"].rsplit(".", 1)
    found: Handler = getattr(importlib.import_module(module_name), function)
    return found


def authorize(event: Any) -> dict[str, Any]:
    return handler()(event, LocalContext(function_name="IotAuthorizerFunction"))


def connect(
    username: str | None, token: str | bytes | None, client_id: str | None, protocols: list[str] | None = None
) -> dict[str, Any]:
    """The event file with this CONNECT's fields (None: the field left out; a str token is
    base64-encoded as IoT Core does, bytes are sent as they are)."""
    event: dict[str, Any] = json.loads((EVENTS / "iot_authorizer.json").read_text())
    mqtt = event["protocolData"]["mqtt"]
    for key, value in (("username", username), ("clientId", client_id)):
        if value is None:
            del mqtt[key]
        else:
            mqtt[key] = value
    if token is None:
        del mqtt["password"]
    else:
        mqtt["password"] = base64.b64encode(token.encode()).decode() if isinstance(token, str) else token.decode()
    if protocols is not None:
        event["protocols"] = protocols
    return event


def as_device(tenant: str, device_id: str, token: str) -> dict[str, Any]:
    return connect(f"{device_id}?x-amz-customauthorizer-name=iot-jobs-devices", token, f"{device_id}@{tenant}")


def refused(answer: dict[str, Any]) -> bool:
    return answer["isAuthenticated"] is False and answer["policyDocuments"] == []


def statements(answer: dict[str, Any]) -> dict[str, list[str]]:
    """The answer's one policy as {action: [resources]}, every statement an Allow."""
    assert answer["isAuthenticated"] is True
    (document,) = answer["policyDocuments"]
    assert len(document) <= 2048  # IoT Core's limit for one policy document
    policy = json.loads(document)
    assert policy["Version"] == "2012-10-17"
    found: dict[str, list[str]] = {}
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow" and set(statement) == {"Effect", "Action", "Resource"}
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        found.setdefault(statement["Action"], []).extend(resources)
    return found


def may(answer: dict[str, Any], action: str, resource: str) -> bool:
    """Whether the answer's policy allows action on resource (IoT policies' `*` and `?` wildcards)."""
    return any(fnmatchcase(resource, pattern) for pattern in statements(answer).get(action, []))


def test_a_device_may_connect_as_itself_subscribe_to_its_topics_and_receive_nothing_else(
    tenant: str, register: Register
) -> None:
    token = register(tenant, 1)["dev-0000"]
    answer = authorize(as_device(tenant, "dev-0000", token))
    assert answer["isAuthenticated"] is True
    assert re.fullmatch(r"[A-Za-z0-9]{1,128}", answer["principalId"])
    assert 300 <= answer["refreshAfterInSeconds"] <= answer["disconnectAfterInSeconds"] <= 86_400
    arn = f"arn:aws:iot:us-east-1:{ACCOUNT}"
    root = f"iotjobs/{tenant}/things/dev-0000/jobs"
    assert root == notifications.topic_root(Device(tenant, "dev-0000"))
    assert statements(answer) == {
        "iot:Connect": [f"{arn}:client/dev-0000@{tenant}"],
        "iot:Subscribe": [f"{arn}:topicfilter/{root}", f"{arn}:topicfilter/{root}/*"],
        "iot:Receive": [f"{arn}:topic/{root}/*"],
    }
    for topic_filter in (root, f"{root}/#", f"{root}/notify-next", f"{root}/+"):
        assert may(answer, "iot:Subscribe", f"{arn}:topicfilter/{topic_filter}"), topic_filter
    for topic_filter in (
        "#",
        f"iotjobs/{tenant}/#",
        f"iotjobs/{tenant}/things/+/jobs/notify-next",
        f"iotjobs/{tenant}/things/dev-00001/jobs/notify",
        "$aws/things/dev-0000/jobs/notify-next",
    ):
        assert not may(answer, "iot:Subscribe", f"{arn}:topicfilter/{topic_filter}"), topic_filter
    assert not may(answer, "iot:Publish", f"{arn}:topic/{root}/notify-next")  # a device publishes nothing
    assert not may(answer, "iot:Connect", f"{arn}:client/dev-0000")
    assert not may(answer, "iot:Receive", f"{arn}:topic/iotjobs/{tenant}/things/dev-0001/jobs/notify")


def test_what_the_drain_publishes_to_a_device_is_what_its_policy_lets_it_receive(
    db: Database, tenant: str, register: Register, create_job: CreateJob
) -> None:
    tokens = register(tenant, 2)
    notifications.drain(db, lambda notices: None)
    create_job(tenant, job_id="fw")
    published: list[notify.Message] = []
    notifications.drain(
        db,
        lambda notices: published.extend(
            m for n in notices if n.device.tenant_id == tenant for m in notify.messages(n)
        ),
    )
    assert len(published) == 4  # notify-next and notify, for each device
    arn = f"arn:aws:iot:us-east-1:{ACCOUNT}"
    for device_id, token in tokens.items():
        answer = authorize(as_device(tenant, device_id, token))
        mine = [topic for topic, _ in published if f"/things/{device_id}/" in topic]
        assert len(mine) == 2
        assert all(may(answer, "iot:Receive", f"{arn}:topic/{topic}") for topic in mine)
        assert not any(
            may(answer, "iot:Receive", f"{arn}:topic/{topic}") for topic, _ in published if topic not in mine
        )


def test_the_event_file_connects_once_its_token_and_tenant_are_a_devices(tenant: str, register: Register) -> None:
    event = json.loads((EVENTS / "iot_authorizer.json").read_text())
    assert refused(authorize(event))  # its placeholder token is nobody's
    mqtt = event["protocolData"]["mqtt"]
    device_id, file_tenant = mqtt["clientId"].split("@", 1)
    assert mqtt["username"].startswith(f"{device_id}?x-amz-customauthorizer-name=")  # as a device names it
    mqtt["password"] = base64.b64encode(register(tenant, 1)[device_id].encode()).decode()
    assert refused(authorize(event))  # the client id names the file's tenant, not this one
    mqtt["clientId"] = f"{device_id}@{tenant}"
    answer = authorize(event)
    assert answer["isAuthenticated"] is True, file_tenant
    assert may(answer, "iot:Connect", f"arn:aws:iot:us-east-1:{ACCOUNT}:client/{device_id}@{tenant}")


def test_the_same_device_id_in_two_tenants_is_two_clients_and_two_principals(
    tenant: str, other_tenant: str, register: Register
) -> None:
    mine = authorize(as_device(tenant, "dev-0000", register(tenant, 1)["dev-0000"]))
    theirs = authorize(as_device(other_tenant, "dev-0000", register(other_tenant, 1)["dev-0000"]))
    assert mine["principalId"] != theirs["principalId"]
    assert statements(mine)["iot:Connect"] != statements(theirs)["iot:Connect"]
    assert not set(statements(mine)["iot:Receive"]) & set(statements(theirs)["iot:Receive"])


def test_a_connect_that_is_not_the_tokens_device_is_refused(tenant: str, other_tenant: str, register: Register) -> None:
    tokens = register(tenant, 2)
    token, other = tokens["dev-0000"], tokens["dev-0001"]
    cases: dict[str, Any] = {
        "a token that is nobody's": connect("dev-0000", "not-a-token", f"dev-0000@{tenant}"),
        "another device's token": connect("dev-0000", other, f"dev-0000@{tenant}"),
        "another device's username": connect("dev-0001", token, f"dev-0000@{tenant}"),
        "the device id alone as client id": connect("dev-0000", token, "dev-0000"),
        "another tenant's client id": connect("dev-0000", token, f"dev-0000@{other_tenant}"),
        "a client id with more after it": connect("dev-0000", token, f"dev-0000@{tenant}-2"),
        "no password": connect("dev-0000", None, f"dev-0000@{tenant}"),
        "an empty password": connect("dev-0000", "", f"dev-0000@{tenant}"),
        "a password that is not base64": connect("dev-0000", b"***not base64***", f"dev-0000@{tenant}"),
        "a password that is not text": connect("dev-0000", base64.b64encode(b"\xff\xfe\x00"), f"dev-0000@{tenant}"),
        "the token itself, not base64": connect("dev-0000", token.encode(), f"dev-0000@{tenant}"),
        "no username": connect(None, token, f"dev-0000@{tenant}"),
        "no client id": connect("dev-0000", token, None),
        "the token as username": connect(token, token, f"dev-0000@{tenant}"),
        "HTTP, not MQTT": connect("dev-0000", token, f"dev-0000@{tenant}", protocols=["tls", "http"]),
    }
    for case, event in cases.items():
        assert refused(authorize(event)), case
    assert authorize(as_device(tenant, "dev-0000", token))["isAuthenticated"] is True  # the same, right


@pytest.mark.parametrize(
    "event",
    [
        {},
        [],
        "mqtt",
        {"protocols": "mqtt", "protocolData": {"mqtt": {}}},
        {"protocols": ["mqtt"], "protocolData": []},
        {"protocols": ["mqtt"], "protocolData": {"mqtt": None}},
        {"protocols": ["mqtt"], "protocolData": {"mqtt": {"username": 1, "password": 2, "clientId": 3}}},
        {"protocols": ["mqtt"], "protocolData": {"mqtt": {"username": "d", "password": None, "clientId": "d@t"}}},
        {"protocols": ["mqtt"], "protocolData": {"mqtt": {"username": "d", "password": "ZA==", "clientId": "d@t"}}},
    ],
)
def test_a_malformed_event_is_refused_not_raised(event: Any) -> None:
    assert refused(authorize(event))


def test_a_revoked_token_is_refused_at_its_next_connect_or_refresh(
    tenant: str, register: Register, db: Database
) -> None:
    token = register(tenant, 1)["dev-0000"]
    assert authorize(as_device(tenant, "dev-0000", token))["isAuthenticated"] is True
    credentials.revoke(db, tenant, "dev-0000")
    assert refused(authorize(as_device(tenant, "dev-0000", token)))


def test_a_rotated_token_connects_while_its_overlap_lasts(tenant: str, register: Register, db: Database) -> None:
    old = register(tenant, 1)["dev-0000"]
    new = credentials.rotate(db, tenant, "dev-0000", TokenRotate(previous_valid_minutes=5)).token
    assert authorize(as_device(tenant, "dev-0000", old))["isAuthenticated"] is True  # within the overlap
    assert authorize(as_device(tenant, "dev-0000", new))["isAuthenticated"] is True
    newest = credentials.rotate(db, tenant, "dev-0000", TokenRotate(previous_valid_minutes=0)).token
    assert refused(authorize(as_device(tenant, "dev-0000", old)))  # replaced twice: gone
    assert refused(authorize(as_device(tenant, "dev-0000", new)))  # no overlap asked
    assert authorize(as_device(tenant, "dev-0000", newest))["isAuthenticated"] is True


def test_the_token_is_never_logged(tenant: str, register: Register, caplog: pytest.LogCaptureFixture) -> None:
    token = register(tenant, 1)["dev-0000"]
    encoded = base64.b64encode(token.encode()).decode()
    with caplog.at_level(logging.DEBUG):
        authorize(as_device(tenant, "dev-0000", token))
        authorize(connect(token, token, token))  # a device that put its token everywhere
        authorize(connect("dev-0001", token, f"dev-0001@{tenant}"))
    logged = [repr(vars(record)) for record in caplog.records]  # each line with all its keys
    assert any("MQTT connect allowed" in line for line in logged)
    assert sum("MQTT connect refused" in line for line in logged) == 2
    assert not [line for line in logged if token in line or encoded in line]


def test_the_policy_is_in_the_functions_own_partition_region_and_account(
    db: Database, tenant: str, register: Register
) -> None:
    device = notifications.identify(db, register(tenant, 1)["dev-0000"])
    assert device == Device(tenant, "dev-0000")
    arn = "arn:aws-cn:lambda:cn-north-1:123456789012:function:stack-IotAuthorizerFunction-x"
    answer = authorizer.allowed(device, authorizer.Account.of(arn))
    assert statements(answer)["iot:Connect"] == [f"arn:aws-cn:iot:cn-north-1:123456789012:client/dev-0000@{tenant}"]


def test_the_database_out_of_reach_is_an_error_not_a_refusal(tenant: str, register: Register) -> None:
    token = register(tenant, 1)["dev-0000"]
    away = Database(lambda refresh: "postgresql://127.0.0.1:1/nowhere", connect_timeout_s=1)
    with container_database(away), pytest.raises(DatabaseUnavailable):
        authorize(as_device(tenant, "dev-0000", token))


def test_a_refusal_has_the_shape_of_an_answer() -> None:
    answer = authorizer.denied()
    assert refused(answer) and re.fullmatch(r"[A-Za-z0-9]{1,128}", answer["principalId"])
    assert 300 <= answer["refreshAfterInSeconds"] <= 86_400 and 300 <= answer["disconnectAfterInSeconds"] <= 86_400
