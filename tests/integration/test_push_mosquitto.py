"""Push through Debian's Mosquitto, the broker people run (MQTT_URL): the drain publishes with
its own user, QoS 1, and a device's paho client, subscribed to its own topics, gets notify-next
with its next execution and the document; a broker that is away keeps the outbox for later."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from jobs_core.aws import notify
from jobs_core.domain import notifications
from jobs_core.store.db import Database
from jobs_local import mosquitto
from tests.factories import Admin, CreateJob, Register


@pytest.fixture(scope="module")
def broker() -> Iterator[mosquitto.Broker]:
    with mosquitto.running() as running:
        yield running


class Device:
    """A device's MQTT client: subscribes to its own jobs topics and keeps what arrives."""

    def __init__(self, url: str, tenant: str, device_id: str) -> None:
        host, port = url.removeprefix("mqtt://").split(":")
        self.messages: dict[str, list[dict[str, object]]] = {}
        self.got = threading.Condition()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device_id, protocol=mqtt.MQTTv311)
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.on_message = self._message
        self.client.connect(host, int(port))
        self.client.loop_start()
        self.client.subscribe(f"iotjobs/{tenant}/things/{device_id}/jobs/#", qos=1)
        assert subscribed.wait(5)

    def _message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        with self.got:
            self.messages.setdefault(message.topic.rsplit("/", 1)[1], []).append(json.loads(message.payload))
            self.got.notify_all()

    def wait_for(self, kind: str, n: int = 1) -> list[dict[str, object]]:
        with self.got:
            assert self.got.wait_for(lambda: len(self.messages.get(kind, [])) >= n, timeout=10), self.messages
            return self.messages[kind]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_a_device_gets_notify_next_through_mosquitto(
    db: Database, broker: mosquitto.Broker, tenant: str, register: Register, create_job: CreateJob
) -> None:
    register(tenant, 2)
    publisher = notify.MqttPublisher(broker.url, broker.username, broker.password)
    devices = [Device(broker.url, tenant, f"dev-{i:04d}") for i in range(2)]
    try:
        notifications.drain(db, lambda notices: notify.publish_notices(publisher, notices))
        create_job(tenant, job_id="fw", document_params={"url": "https://example.com/fw.bin"})
        notifications.drain(db, lambda notices: notify.publish_notices(publisher, notices))
        for device in devices:
            execution = device.wait_for("notify-next")[-1]["execution"]
            assert isinstance(execution, dict)
            assert execution["jobId"] == "fw" and execution["status"] == "QUEUED"
            assert execution["jobDocument"] == {"operation": "firmware", "url": "https://example.com/fw.bin"}
            listed = device.wait_for("notify")[-1]["jobs"]
            assert isinstance(listed, dict) and [j["jobId"] for j in listed["QUEUED"]] == ["fw"]
    finally:
        for device in devices:
            device.close()
        publisher.close()


def test_a_broker_that_is_away_keeps_the_outbox_until_it_is_back(
    db: Database, admin: Admin, tenant: str, register: Register, create_job: CreateJob
) -> None:
    register(tenant, 1)
    with mosquitto.running() as away:
        pass  # stopped: nothing listens on its port now
    publisher = notify.MqttPublisher(away.url, away.username, away.password, timeout_s=0.5)
    try:
        create_job(tenant, job_id="fw")
        with pytest.raises(notify.PublishFailed):
            notifications.drain(db, lambda notices: notify.publish_notices(publisher, notices))
        left = admin.execute("SELECT count(*) AS n FROM push_outbox WHERE tenant_id = %s", [tenant]).fetchone()
        assert left is not None and left["n"] == 1
    finally:
        publisher.close()
