"""AWS IoT Jobs' MQTT notifications, published from the outbox (domain/notifications.py).

To {prefix}/{tenant_id}/things/{device_id}/jobs/notify-next: `{"timestamp", "execution"}`, the
device's next execution as the data plane's JobExecution with its document as a JSON object (as
AWS's MQTT API sends it), or `{"timestamp"}` alone when it has nothing to do. To .../jobs/notify:
`{"timestamp", "jobs": {"QUEUED": [...], "IN_PROGRESS": [...]}}`, the data plane's
JobExecutionSummary lists, oldest first, at most 10 of each.

Two publishers, one contract (all of a batch acknowledged, or an exception and the batch stays in
the outbox): MQTT (MQTT_URL: the embedded broker of `make run`, Mosquitto, any broker), and AWS
IoT Core's iot-data Publish (IOT_DATA_ENDPOINT), in the cloud.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol
from urllib.parse import urlsplit

from jobs_core.aws.data_plane import execution, summary
from jobs_core.aws.shapes import epoch_s
from jobs_core.domain.notifications import Notice, topic_root
from jobs_core.errors import JobsError
from jobs_core.observability import logger
from jobs_core.settings import Settings, settings

Message = tuple[str, bytes]  # topic, payload


class PublishFailed(JobsError):
    """The broker did not take a batch: it stays in the outbox for the next drain."""


MAX_TOPIC_BYTES = 256  # AWS IoT Core's limit: a longer topic is refused, every time


def messages(notice: Notice) -> list[Message]:
    """A notice as its two messages: notify-next, then notify; none for a device whose topics would
    be too long to publish (its tenant and device ids together: it cannot connect either, and polls)."""
    root = topic_root(notice.device)
    if len(f"{root}/notify-next".encode()) > MAX_TOPIC_BYTES:
        return []
    timestamp = epoch_s(notice.at)
    following: dict[str, Any] = {"timestamp": timestamp}
    if notice.next is not None:
        shape = execution(notice.next, notice.device.device_id).model_dump(exclude_none=True)
        shape["jobDocument"] = json.loads(shape["jobDocument"])
        following["execution"] = shape
    jobs = {
        "QUEUED": [summary(row).model_dump(exclude_none=True) for row in notice.queued],
        "IN_PROGRESS": [summary(row).model_dump(exclude_none=True) for row in notice.in_progress],
    }
    return [
        (f"{root}/notify-next", json.dumps(following).encode()),
        (f"{root}/notify", json.dumps({"timestamp": timestamp, "jobs": jobs}).encode()),
    ]


class Publisher(Protocol):
    def publish(self, batch: list[Message]) -> None: ...

    def close(self) -> None: ...


class MqttPublisher:
    """QoS 1 to an MQTT broker, over one connection kept across drains; a batch is done when the
    broker has acknowledged every message of it."""

    def __init__(self, url: str, username: str | None, password: str | None, timeout_s: float = 10.0) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.url = url
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
            raise ValueError(f"MQTT_URL must be mqtt://host:port, not {url!r}")
        self._timeout_s = timeout_s
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"iot-jobs-push-{id(self):x}", protocol=mqtt.MQTTv311
        )
        self._client.max_inflight_messages_set(1000)
        self._client.max_queued_messages_set(0)
        if username is not None:
            self._client.username_pw_set(username, password)
        self._connected = threading.Event()
        self._client.on_connect = lambda client, userdata, flags, reason, properties: (
            self._connected.set() if not reason.is_failure else None
        )
        self._client.on_disconnect = lambda *args: self._connected.clear()
        self._client.connect_async(parts.hostname, parts.port or 1883, keepalive=60)
        self._client.loop_start()

    def publish(self, batch: list[Message]) -> None:
        if not self._connected.wait(self._timeout_s):
            raise PublishFailed("the MQTT broker is not connected")
        try:
            sent = [self._client.publish(topic, payload, qos=1) for topic, payload in batch]
            deadline = time.monotonic() + self._timeout_s
            for info in sent:
                info.wait_for_publish(max(0.0, deadline - time.monotonic()))
                if not info.is_published():
                    raise PublishFailed("the MQTT broker did not acknowledge every message")
        except (RuntimeError, ValueError) as exc:  # paho: the connection went while publishing
            raise PublishFailed(f"the MQTT broker went away: {type(exc).__name__}") from exc

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


class IotDataPublisher:
    """AWS IoT Core's Publish (boto3 iot-data), QoS 1, a few at a time: one HTTPS call a message."""

    def __init__(self, endpoint: str, workers: int = 16) -> None:
        import boto3
        from botocore.config import Config

        url = endpoint if endpoint.startswith("https://") else f"https://{endpoint}"
        config = Config(
            connect_timeout=3, read_timeout=5, retries={"total_max_attempts": 2}, max_pool_connections=workers
        )
        self._client = boto3.client("iot-data", endpoint_url=url, config=config)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="iot-data")

    def publish(self, batch: list[Message]) -> None:
        try:
            list(self._pool.map(self._one, batch))
        except Exception as exc:  # a throttle, a timeout, IoT Core away: the batch stays for the next drain
            raise PublishFailed(f"iot-data Publish failed: {type(exc).__name__}") from exc

    def _one(self, message: Message) -> None:
        from botocore.exceptions import ClientError

        try:
            self._client.publish(topic=message[0], qos=1, payload=message[1])
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500)
            if status in (400, 403, 413):  # never publishable: dropped, not retried for ever
                logger.warning("push: iot-data refused a message", extra={"status": status})
                return
            raise

    def close(self) -> None:
        self._pool.shutdown(wait=False)


def publisher_from(config: Settings) -> Publisher | None:
    """The publisher the settings name: MQTT_URL, else IOT_DATA_ENDPOINT; None: push is off."""
    if config.mqtt_url:
        return MqttPublisher(config.mqtt_url, config.mqtt_username, config.mqtt_password)
    if config.iot_data_endpoint:
        return IotDataPublisher(config.iot_data_endpoint)
    return None


def publish_notices(publisher: Publisher, notices: Iterable[Notice]) -> None:
    """Every device's notify-next first, then the lists: what a device acts on arrives soonest."""
    pairs = [pair for notice in notices if (pair := messages(notice))]
    publisher.publish([pair[0] for pair in pairs] + [pair[1] for pair in pairs])


_publisher: Publisher | None = None


def use_publisher(replacement: Publisher | None) -> Publisher | None:
    """Replace the container's publisher (None: from the settings on next use), for the local
    server, whose broker takes the service's messages in its own process; returns the previous."""
    global _publisher
    previous, _publisher = _publisher, replacement
    return previous


def publisher() -> Publisher | None:
    """The container's publisher, created on first use."""
    global _publisher
    if _publisher is None:
        _publisher = publisher_from(settings())
    return _publisher
