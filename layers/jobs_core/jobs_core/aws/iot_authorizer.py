"""AWS IoT Core's custom authorizer for the devices' MQTT connections (push): who a CONNECT is, and
the policy it gets (AWS's documented request and response: "Defining your Lambda function" of
AWS IoT Core's custom authentication).

A device connects with MQTT username = its device id (a client that names the authorizer appends
`?x-amz-customauthorizer-name=...`, which is cut off here), password = its provision token (AWS
IoT Core hands it over base64-encoded), and client id = `{device_id}@{tenant_id}`. The token
decides who it is, as for every device call (`notifications.identify`: its current token, or the
one a rotation replaced while the overlap lasts); the username and the client id must then name
that device, or the connection is refused.

The client id. AWS IoT's convention is the thing name, but a device id is unique within its
tenant only, and IoT Core keeps one connection per client id in the account: a second CONNECT
with an id in use drops the first. Two tenants' `dev-0001` sharing a client id would take turns
dropping each other, and a tenant could knock another's device off by registering its id. So the
id carries the tenant: `{device_id}@{tenant_id}` (a device id has no `@`, so the first one
separates them; a tenant id may hold more). Exactly that id, no prefix: a device holds one
connection. (IoT Core caps client ids at 128 characters: a device whose id and tenant id are
longer together cannot connect, and polls.)

The policy allows exactly: connecting as that client id, subscribing to the device's topic root
(`notifications.topic_root`) and the filters below it, and receiving what is published under it.
Nothing else: no publish (a device reports through the API), no other device's topics, no `$aws`
topic. It holds for `DISCONNECT_AFTER_S` (IoT Core's most); every `REFRESH_AFTER_S` IoT Core asks
again, so a revoked token, or a replaced one past its overlap, loses its connection within that.

A missing, wrong or revoked token, a malformed event (a field missing, a password that is not
base64 or not text, another protocol than MQTT) is a refusal, never an exception. The database
out of reach is an exception: an outage, which Lambda's Errors metric shows (IoT Core refuses the
CONNECT either way; the device retries). The token is never logged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jobs_core.domain import notifications
from jobs_core.domain.notifications import Device
from jobs_core.observability import logger
from jobs_core.settings import settings
from jobs_core.store.db import Database

DISCONNECT_AFTER_S = 86_400  # IoT Core's range: 300..86,400
REFRESH_AFTER_S = 900  # how long a revocation takes to reach a connected device; a Lambda call per device
MAX_CLIENT_ID = 128
# What a tenant id and a device id are made of (models.TENANT_PATTERN, DEVICE_ID_PATTERN): none of
# IoT policies' wildcards (* ?), policy variables ($), MQTT's (+ #) or a topic level's end (/).
SAFE = re.compile(r"[A-Za-z0-9_.:@-]+")


@dataclass(frozen=True)
class Connect:
    """What an MQTT CONNECT carries: the username (query string cut off), the password (decoded),
    the client id, and the connection's id (for the logs)."""

    username: str
    token: str
    client_id: str
    connection_id: str | None


def connect_of(event: Any) -> Connect | None:
    """The MQTT CONNECT of an authorizer event; None when it is not one that carries a username, a
    password that is base64 of UTF-8 text, and a client id."""
    if not isinstance(event, Mapping):
        return None
    protocols, data = event.get("protocols"), event.get("protocolData")
    if not isinstance(protocols, list) or "mqtt" not in protocols or not isinstance(data, Mapping):
        return None
    mqtt = data.get("mqtt")
    if not isinstance(mqtt, Mapping):
        return None
    username, password, client_id = mqtt.get("username"), mqtt.get("password"), mqtt.get("clientId")
    if not (isinstance(username, str) and isinstance(password, str) and isinstance(client_id, str)):
        return None
    try:
        token = base64.b64decode(password, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):  # not base64, or not UTF-8 (UnicodeDecodeError is a ValueError)
        return None
    metadata = event.get("connectionMetadata")
    connection_id = metadata.get("id") if isinstance(metadata, Mapping) else None
    return Connect(
        username=username.split("?", 1)[0],
        token=token,
        client_id=client_id,
        connection_id=str(connection_id) if connection_id is not None else None,
    )


def client_id(device: Device) -> str:
    """The MQTT client id a device connects with: `{device_id}@{tenant_id}`."""
    return f"{device.device_id}@{device.tenant_id}"


def principal_id(device: Device) -> str:
    """IoT Core's principal for the connection (alphanumeric, at most 128): a digest of who it is."""
    return hashlib.sha256(f"{device.tenant_id}\0{device.device_id}".encode()).hexdigest()


@dataclass(frozen=True)
class Account:
    """Where the policy's resources are: the authorizer function's own partition, region, account."""

    partition: str
    region: str
    account_id: str

    @classmethod
    def of(cls, function_arn: str | None) -> Account:
        """From the invoked function's ARN (arn:aws:lambda:REGION:ACCOUNT:function:NAME); the
        settings' region and account where there is none."""
        parts = (function_arn or "").split(":")
        if len(parts) >= 5 and parts[0] == "arn" and all(parts[1:5]):
            return cls(parts[1], parts[3], parts[4])
        config = settings()
        return cls("aws", config.aws_region, config.aws_account_id)

    def arn(self, resource: str) -> str:
        return f"arn:{self.partition}:iot:{self.region}:{self.account_id}:{resource}"


def policy(device: Device, account: Account) -> dict[str, Any]:
    """The IoT policy of a device's connection: connect as its client id, subscribe to its topic
    root and below, receive what is published there. Nothing else."""
    root = notifications.topic_root(device)
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "iot:Connect", "Resource": account.arn(f"client/{client_id(device)}")},
            {
                "Effect": "Allow",
                "Action": "iot:Subscribe",
                "Resource": [account.arn(f"topicfilter/{root}"), account.arn(f"topicfilter/{root}/*")],
            },
            {"Effect": "Allow", "Action": "iot:Receive", "Resource": account.arn(f"topic/{root}/*")},
        ],
    }


def allowed(device: Device, account: Account) -> dict[str, Any]:
    return {
        "isAuthenticated": True,
        "principalId": principal_id(device),
        "disconnectAfterInSeconds": DISCONNECT_AFTER_S,
        "refreshAfterInSeconds": REFRESH_AFTER_S,
        "policyDocuments": [json.dumps(policy(device, account), separators=(",", ":"))],
    }


def denied() -> dict[str, Any]:
    return {
        "isAuthenticated": False,
        "principalId": "unauthenticated",
        "disconnectAfterInSeconds": 300,
        "refreshAfterInSeconds": 300,
        "policyDocuments": [],
    }


def authorize(db: Database, event: Any, function_arn: str | None = None) -> dict[str, Any]:
    """The authorizer's answer to a connection: its policy when the token is a device's and the
    username and client id name that device; else a refusal."""
    connect = connect_of(event)
    if connect is None:
        return _refuse("not an MQTT CONNECT with a username, a base64 password and a client id", None)
    if not connect.token or not SAFE.fullmatch(connect.username):
        return _refuse("no token, or a username that is no device id", connect)
    device = notifications.identify(db, connect.token)
    if device is None:
        return _refuse("unknown, revoked or expired token", connect)
    if not (SAFE.fullmatch(device.tenant_id) and SAFE.fullmatch(device.device_id)):
        return _refuse("a tenant or device id that cannot be put in a policy", connect, device)
    if connect.username != device.device_id:
        return _refuse("the username is not the token's device", connect, device)
    expected = client_id(device)
    if connect.client_id != expected or len(expected) > MAX_CLIENT_ID:
        return _refuse("the client id is not {device_id}@{tenant_id}", connect, device)
    logger.info(
        "MQTT connect allowed",
        extra={"tenant_id": device.tenant_id, "device_id": device.device_id, "connection_id": connect.connection_id},
    )
    return allowed(device, Account.of(function_arn))


def _refuse(reason: str, connect: Connect | None, device: Device | None = None) -> dict[str, Any]:
    """A refusal, logged with what it is safe to log: not the username nor the client id either (a
    device that swapped its username and password would put its token there)."""
    extra: dict[str, Any] = {"reason": reason, "connection_id": connect.connection_id if connect else None}
    if device is not None:
        extra.update(tenant_id=device.tenant_id, device_id=device.device_id)
    logger.info("MQTT connect refused", extra=extra)
    return denied()
