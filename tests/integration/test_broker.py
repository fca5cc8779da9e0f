"""The embedded broker of `make run` (jobs_local/broker.py), with provision tokens checked against
the real database: who may connect, subscribe and publish, as AWS IoT Core's custom authorizer
decides in the cloud, and what a client sending garbage cannot do to the others."""

from __future__ import annotations

import errno
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from jobs_core.aws import notify
from jobs_core.domain import credentials, notifications
from jobs_core.domain.notifications import Device
from jobs_core.store.db import Database
from jobs_local import amqtt_broker as embedded
from jobs_local.broker import EmbeddedBroker
from jobs_local.pooler import free_port
from tests.factories import CreateJob, Register

SERVICE = "iot-jobs"
SERVICE_PASSWORD = "service-secret-for-tests"
WAIT_S = 5.0


@pytest.fixture
def broker(db: Database) -> Iterator[EmbeddedBroker]:
    lock = threading.Lock()  # one connection; the broker asks from several threads, as the server's does

    def identify(token: str | None) -> Device | None:
        with lock:
            return notifications.identify(db, token)

    running = EmbeddedBroker(
        port=free_port(), identify=identify, service_username=SERVICE, service_password=SERVICE_PASSWORD
    )
    running.start()
    yield running
    running.stop()


def root(tenant: str, device_id: str) -> str:
    return f"iotjobs/{tenant}/things/{device_id}/jobs"


class Client:
    """A paho client (MQTT 3.1.1) that keeps what happens to it: its CONNACK, SUBACKs, messages."""

    def __init__(
        self, running: EmbeddedBroker, username: str | None, password: str | None, keepalive: int = 30, **options: Any
    ) -> None:
        self.connack: ReasonCode | None = None
        self.session_present: bool | None = None
        self.granted: list[int] = []
        self.messages: list[tuple[str, bytes, int]] = []
        self.answered = threading.Event()  # the CONNACK
        self.subscribed = threading.Event()
        self.disconnected = threading.Event()
        self.got = threading.Condition()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311, **options)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.on_connect = self._connected
        self.client.on_subscribe = self._subscribed
        self.client.on_message = self._message
        self.client.on_disconnect = lambda *args: self.disconnected.set()
        self.client.connect("127.0.0.1", running.port, keepalive=keepalive)
        self.client.loop_start()
        assert self.answered.wait(WAIT_S), "no CONNACK"

    def _connected(self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any) -> None:
        self.connack, self.session_present = reason, flags.session_present
        if reason.is_failure:
            client.disconnect()  # else paho tries again, a second later
        self.answered.set()

    def _subscribed(self, client: mqtt.Client, userdata: Any, mid: int, codes: list[ReasonCode], props: Any) -> None:
        self.granted = [code.value for code in codes]
        self.subscribed.set()

    def _message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self.got:
            self.messages.append((message.topic, bytes(message.payload), message.qos))
            self.got.notify_all()

    @property
    def accepted(self) -> bool:
        return self.connack is not None and not self.connack.is_failure

    def subscribe(self, *filters: str) -> list[int]:
        self.subscribed.clear()
        self.client.subscribe([(f, 1) for f in filters])
        assert self.subscribed.wait(WAIT_S), "no SUBACK"
        return self.granted

    def publish(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(WAIT_S)
        assert info.is_published(), "no PUBACK"

    def wait_for(self, n: int) -> list[tuple[str, bytes, int]]:
        with self.got:
            assert self.got.wait_for(lambda: len(self.messages) >= n, timeout=WAIT_S), self.messages
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    made: list[Client] = []
    yield made
    for client in made:
        client.close()


def test_a_device_with_its_token_gets_its_notify_next_from_the_push_drain(
    db: Database, broker: EmbeddedBroker, tenant: str, register: Register, create_job: CreateJob
) -> None:
    token = register(tenant, 1)["dev-0000"]
    device = Client(broker, "dev-0000", token)
    publisher = notify.MqttPublisher(broker.url, SERVICE, SERVICE_PASSWORD)
    try:
        assert device.accepted
        assert device.subscribe(root(tenant, "dev-0000") + "/notify-next") == [1]
        notifications.drain(db, lambda notices: notify.publish_notices(publisher, notices))  # what came before
        create_job(tenant, job_id="fw", document_params={"version": "2.0"})
        notifications.drain(db, lambda notices: notify.publish_notices(publisher, notices))
        [(topic, payload, qos)] = device.wait_for(1)
        assert topic == root(tenant, "dev-0000") + "/notify-next" and qos == 1
        execution = json.loads(payload)["execution"]
        assert execution["jobId"] == "fw" and execution["jobDocument"] == {"operation": "firmware", "version": "2.0"}
    finally:
        device.close()
        publisher.close()


def test_the_service_publishes_in_the_broker_s_process_as_make_run_does(
    db: Database, broker: EmbeddedBroker, tenant: str, register: Register, create_job: CreateJob
) -> None:
    """No client connection: the drain hands its batch to the broker, which delivers it at QoS 1
    to the device's subscription (and to nobody else's)."""
    tokens = register(tenant, 2)
    device, other = Client(broker, "dev-0000", tokens["dev-0000"]), Client(broker, "dev-0001", tokens["dev-0001"])
    try:
        assert device.subscribe(root(tenant, "dev-0000") + "/#") == [1]
        assert other.subscribe(root(tenant, "dev-0001") + "/#") == [1]
        notifications.drain(db, lambda notices: None)  # what came before
        create_job(tenant, job_id="fw", target_device_id="dev-0000")
        notifications.drain(db, lambda notices: notify.publish_notices(broker, notices))
        topics = [(topic, qos) for topic, _, qos in device.wait_for(2)]
        assert topics == [(root(tenant, "dev-0000") + "/notify-next", 1), (root(tenant, "dev-0000") + "/notify", 1)]
        assert other.messages == []
    finally:
        device.close()
        other.close()
    broker.stop()
    with pytest.raises(notify.PublishFailed):
        broker.publish([(root(tenant, "dev-0000") + "/notify", b"{}")])


@pytest.mark.parametrize("case", ["wrong token", "revoked token", "another device's token", "no password", "none"])
def test_a_client_without_a_device_s_current_credentials_is_refused(
    db: Database, broker: EmbeddedBroker, tenant: str, register: Register, clients: list[Client], case: str
) -> None:
    tokens = register(tenant, 2)
    token = tokens["dev-0000"]
    username: str | None = "dev-0000"
    password: str | None = token
    clients.append(Client(broker, username, password))
    assert clients[-1].accepted  # the same device, with its token, before
    if case == "wrong token":
        password = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    elif case == "revoked token":
        credentials.revoke(db, tenant, "dev-0000")
    elif case == "another device's token":
        password = tokens["dev-0001"]
    elif case == "no password":
        password = None
    else:
        username = password = None
    clients.append(Client(broker, username, password))
    assert clients[-1].connack is not None and clients[-1].connack.is_failure, clients[-1].connack


def test_the_service_s_username_takes_only_its_password(broker: EmbeddedBroker, clients: list[Client]) -> None:
    clients.append(Client(broker, SERVICE, SERVICE_PASSWORD))
    clients.append(Client(broker, SERVICE, SERVICE_PASSWORD + "x"))
    assert clients[0].accepted and not clients[1].accepted
    assert clients[0].subscribe("iotjobs/#", "#") == [0x80, 0x80]  # the service reads nothing


def test_a_device_subscribes_to_its_own_topics_only(
    broker: EmbeddedBroker,
    tenant: str,
    other_tenant: str,
    register: Register,
    clients: list[Client],
) -> None:
    tokens = register(tenant, 2)
    register(other_tenant, 1)
    device = Client(broker, "dev-0000", tokens["dev-0000"])
    service = Client(broker, SERVICE, SERVICE_PASSWORD)
    clients.extend([device, service])
    refused = [
        root(tenant, "dev-0001") + "/#",  # another device's
        root(other_tenant, "dev-0000") + "/#",  # a device of the same id, in another tenant
        f"iotjobs/{tenant}/things/+/jobs/#",  # wildcards above its own
        f"iotjobs/{tenant}/#",
        "#",
        "$aws/things/dev-0000/jobs/notify-next",
    ]
    granted = device.subscribe(root(tenant, "dev-0000") + "/#", *refused)
    assert granted == [1] + [0x80] * len(refused)
    for topic in (root(tenant, "dev-0001") + "/notify-next", root(other_tenant, "dev-0000") + "/notify-next"):
        service.publish(topic, b"not yours")
    service.publish(root(tenant, "dev-0000") + "/notify-next", b"yours")
    assert device.wait_for(1) == [(root(tenant, "dev-0000") + "/notify-next", b"yours", 1)]


def test_devices_publish_nothing_and_nobody_publishes_to_a_dollar_topic(
    broker: EmbeddedBroker, tenant: str, register: Register, clients: list[Client]
) -> None:
    tokens = register(tenant, 2)
    first = Client(broker, "dev-0000", tokens["dev-0000"])
    second = Client(broker, "dev-0001", tokens["dev-0001"])
    service = Client(broker, SERVICE, SERVICE_PASSWORD)
    clients.extend([first, second, service])
    assert first.subscribe(root(tenant, "dev-0000") + "/#") == [1]
    assert second.subscribe(root(tenant, "dev-0001") + "/#") == [1]
    first.publish(root(tenant, "dev-0000") + "/notify-next", b"from itself")  # acknowledged, then dropped
    first.publish(root(tenant, "dev-0001") + "/notify-next", b"as the service")
    first.publish("$aws/things/dev-0001/jobs/notify-next", b"dollar")
    service.publish("$aws/things/dev-0001/jobs/notify-next", b"dollar")  # dropped; the service stays connected
    service.publish(root(tenant, "dev-0000") + "/notify", b"service")
    service.publish(root(tenant, "dev-0001") + "/notify", b"service")
    assert first.wait_for(1) == [(root(tenant, "dev-0000") + "/notify", b"service", 1)]
    assert second.wait_for(1) == [(root(tenant, "dev-0001") + "/notify", b"service", 1)]
    assert not any(c.disconnected.is_set() for c in clients)


@pytest.mark.usefixtures("database_url")  # the settings (the topic prefix)
def test_who_may_publish_where() -> None:
    service, device = embedded.Client(None), embedded.Client(Device("t", "d"))
    assert embedded.may_publish(service, "iotjobs/t/things/d/jobs/notify-next")
    for topic in ("$aws/things/d/jobs/notify-next", "$SYS/broker", "elsewhere/t", "iotjobs", "iotjobs/+/x"):
        assert not embedded.may_publish(service, topic), topic
    assert not embedded.may_publish(device, "iotjobs/t/things/d/jobs/notify-next")


def test_a_persistent_session_is_only_for_who_made_it(
    broker: EmbeddedBroker, tenant: str, register: Register, clients: list[Client]
) -> None:
    tokens = register(tenant, 2)
    topic = root(tenant, "dev-0000") + "/notify-next"
    persistent: dict[str, Any] = {"client_id": "shared-id", "clean_session": False}
    owner = Client(broker, "dev-0000", tokens["dev-0000"], **persistent)
    assert owner.subscribe(topic) == [1]
    owner.close()
    intruder = Client(broker, "dev-0001", tokens["dev-0001"], **persistent)  # the same client id
    stranger = Client(broker, "dev-0000", "not-a-token", client_id="shared-id", clean_session=True)
    service = Client(broker, SERVICE, SERVICE_PASSWORD)
    clients.extend([intruder, stranger, service])
    service.publish(topic, b"kept for dev-0000")  # queued in its session, the device being away
    assert intruder.accepted and intruder.session_present is False and not stranger.accepted
    back = Client(broker, "dev-0000", tokens["dev-0000"], **persistent)
    clients.append(back)
    assert back.session_present is True
    assert back.wait_for(1) == [(topic, b"kept for dev-0000", 1)]
    assert intruder.messages == []


def test_a_client_id_taken_again_by_the_same_device_only_takes_over(
    broker: EmbeddedBroker, tenant: str, register: Register, clients: list[Client]
) -> None:
    tokens = register(tenant, 2)
    first = Client(broker, "dev-0000", tokens["dev-0000"], client_id="same-id")
    other = Client(broker, "dev-0001", tokens["dev-0001"], client_id="same-id")  # another device's session
    clients.extend([first, other])
    assert first.subscribe(root(tenant, "dev-0000") + "/#") == [1]
    assert other.accepted and not first.disconnected.wait(0.2)
    second = Client(broker, "dev-0000", tokens["dev-0000"], client_id="same-id")
    clients.append(second)
    assert second.accepted and first.disconnected.wait(WAIT_S) and not other.disconnected.is_set()


def _packet(kind: int, body: bytes) -> bytes:
    length, encoded = len(body), bytearray()
    while True:
        byte, length = length % 128, length // 128
        encoded.append(byte | (0x80 if length else 0))
        if not length:
            return bytes([kind]) + bytes(encoded) + body


def _string(text: str) -> bytes:
    return len(text.encode()).to_bytes(2, "big") + text.encode()


def _raw(running: EmbeddedBroker, *credentials: str, keep_alive_s: int = 30) -> socket.socket:
    """A socket to the broker; given a username and a password, past an accepted CONNECT."""
    sock = socket.create_connection(("127.0.0.1", running.port), timeout=WAIT_S)
    if credentials:
        username, password = credentials
        flags = 0b1100_0010  # username, password, clean session
        body = _string("MQTT") + bytes([4, flags]) + keep_alive_s.to_bytes(2, "big")
        sock.sendall(_packet(0x10, body + _string("raw-client") + _string(username) + _string(password)))
        assert sock.recv(4) == b"\x20\x02\x00\x00"  # CONNACK, accepted
    return sock


def _closed_by_broker(sock: socket.socket) -> bool:
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        return False
    finally:
        sock.close()
    return True


def test_garbage_and_oversized_packets_end_only_their_own_connection(
    broker: EmbeddedBroker, tenant: str, register: Register, clients: list[Client]
) -> None:
    tokens = register(tenant, 3)
    device = Client(broker, "dev-0000", tokens["dev-0000"])
    service = Client(broker, SERVICE, SERVICE_PASSWORD)
    clients.extend([device, service])
    assert device.subscribe(root(tenant, "dev-0000") + "/#") == [1]
    absurd = b"\x30\xff\xff\xff\x7f" + b"\x00" * 1024  # a PUBLISH of 256 MiB, announced
    oversized = _packet(0x30, _string(root(tenant, "dev-0000") + "/notify") + b"x" * (embedded.MAX_PACKET_BYTES + 1))
    attempts = {
        "garbage": (_raw(broker), b"\xde\xad\xbe\xef" * 64),
        "absurd length first": (_raw(broker), absurd),
        "absurd length once connected": (_raw(broker, "dev-0001", tokens["dev-0001"]), absurd),
        "past the limit, as the service": (_raw(broker, SERVICE, SERVICE_PASSWORD), oversized),
        "a malformed SUBSCRIBE": (_raw(broker, "dev-0002", tokens["dev-0002"]), b"\x82\x03\x00\x01\xff"),
    }
    for sock, data in attempts.values():
        sock.sendall(data)
    assert {name: _closed_by_broker(sock) for name, (sock, _) in attempts.items()} == dict.fromkeys(attempts, True)
    service.publish(root(tenant, "dev-0000") + "/notify", b"still here")
    assert device.wait_for(1) == [(root(tenant, "dev-0000") + "/notify", b"still here", 1)]
    later = Client(broker, "dev-0001", tokens["dev-0001"])
    clients.append(later)
    assert later.subscribe(root(tenant, "dev-0001") + "/#") == [1]
    service.publish(root(tenant, "dev-0001") + "/notify", b"after")
    assert later.wait_for(1) == [(root(tenant, "dev-0001") + "/notify", b"after", 1)]
    assert not device.disconnected.is_set() and not service.disconnected.is_set()


def test_a_client_silent_past_its_keep_alive_or_without_a_connect_is_let_go(
    broker: EmbeddedBroker, tenant: str, register: Register, clients: list[Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    token = register(tenant, 1)["dev-0000"]
    monkeypatch.setattr(embedded, "CONNECT_TIMEOUT_S", 0.5)
    pinging = Client(broker, "dev-0000", token, keepalive=1)  # paho pings every second: it stays
    clients.append(pinging)
    silent, mute = _raw(broker, "dev-0000", token, keep_alive_s=1), _raw(broker)
    assert _closed_by_broker(silent) and _closed_by_broker(mute)  # after 1.5 s, and 0.5 s
    assert pinging.accepted and not pinging.disconnected.is_set()


def test_a_taken_port_raises_and_stop_frees_the_port() -> None:
    def broker_on(port: int) -> EmbeddedBroker:
        return EmbeddedBroker(
            port=port, identify=lambda token: None, service_username=SERVICE, service_password=SERVICE_PASSWORD
        )

    first = broker_on(free_port())
    first.start()
    try:
        assert first.url == f"mqtt://127.0.0.1:{first.port}"
        with pytest.raises(OSError) as taken:
            broker_on(first.port).start()
        assert taken.value.errno == errno.EADDRINUSE
    finally:
        first.stop()
    first.stop()  # again: nothing
    with socket.create_server(("127.0.0.1", first.port)):
        pass
    again = broker_on(first.port)
    again.start()
    try:
        client = Client(again, SERVICE, SERVICE_PASSWORD)
        assert client.accepted
    finally:
        again.stop()  # with a client connected
    assert client.disconnected.wait(WAIT_S)
    client.close()
    assert not any(t.name == f"mqtt-broker-{first.port}" for t in threading.enumerate())
