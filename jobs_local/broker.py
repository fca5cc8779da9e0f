"""The embedded MQTT broker of `make run`: amqtt (pure Python, asyncio) in a thread of its own,
checking what AWS IoT Core's custom authorizer checks in the cloud.

- CONNECT: a username and a password, always. The service's own pair (compared in constant time)
  may publish under `{prefix}/` and subscribe to nothing; any other password is a device's
  provision token (`identify`, a database call, run off the event loop), and the username must be
  that device's id. Anything else is refused before the client touches any session.
- SUBSCRIBE: a device, to its own topics only (`notifications.may_subscribe`); a filter it may not
  have is refused (SUBACK 0x80), the others of the same SUBSCRIBE are granted.
- PUBLISH: devices publish nothing and nobody publishes to a `$` topic: such a message (or a will)
  is dropped.
- A packet over MAX_PACKET_BYTES, or garbage, ends that client's connection only.

amqtt 0.12 (pinned) takes plugins by class path in its config; `Authorizer` is both its auth and
its topic plugin. `_Broker` overrides a few of amqtt's own steps, each saying why.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

from amqtt.contexts import BrokerConfig, ListenerConfig, ListenerType  # type: ignore[import-untyped]

from jobs_core.aws.notify import PublishFailed
from jobs_core.domain.notifications import Device
from jobs_local.amqtt_broker import (
    PUBLISH_TIMEOUT_S,
    SESSION_EXPIRY_S,
    STOP_TIMEOUT_S,
    Authorizer,
    HardenedBroker,
    cancel_all,
    queue_messages,
)

log = logging.getLogger(__name__)


class EmbeddedBroker:
    """The broker, on its own thread and event loop, from start() until stop()."""

    def __init__(
        self,
        *,
        port: int,
        identify: Callable[[str | None], Device | None],
        service_username: str,
        service_password: str,
        host: str = "127.0.0.1",
    ) -> None:
        self.port = port
        self.host = host
        self._plugin = dict(identify=identify, service_username=service_username, service_password=service_password)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._broker: HardenedBroker | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def publish(self, batch: list[tuple[str, bytes]]) -> None:
        """The service's messages (aws/notify.py's Publisher), handed to the broker in its process, QoS 1
        to subscribers: no client connection, no socket. Done once the broker holds every one, which
        is what its PUBACK would say."""
        loop, broker = self._loop, self._broker
        if loop is None or broker is None:
            raise PublishFailed("the embedded MQTT broker is not running")
        try:
            asyncio.run_coroutine_threadsafe(queue_messages(broker, batch), loop).result(PUBLISH_TIMEOUT_S)
        except (TimeoutError, RuntimeError) as exc:  # stopping, or its loop stuck
            raise PublishFailed(f"the embedded MQTT broker did not take the batch: {type(exc).__name__}") from exc

    def close(self) -> None:
        """A publisher's close: the broker itself stops with stop()."""

    def start(self) -> None:
        """Listen (an OSError, EADDRINUSE among them, when it cannot) and serve from a daemon thread."""
        with self._lock:
            if self._thread is not None:
                raise RuntimeError("the broker is already started")
            for name in ("amqtt", "transitions"):  # a line per connection, at INFO: only what goes wrong
                if logging.getLogger(name).level == logging.NOTSET:
                    logging.getLogger(name).setLevel(logging.WARNING)
            sock = socket.create_server((self.host, self.port), backlog=1024)
            started = threading.Event()
            failed: list[BaseException] = []
            thread = threading.Thread(
                target=self._run, args=(sock, started, failed), name=f"mqtt-broker-{self.port}", daemon=True
            )
            thread.start()
            started.wait()
            if failed:
                thread.join()
                raise failed[0]
            self._thread = thread

    def stop(self) -> None:
        """Disconnect every client, stop listening and join the thread; again, nothing."""
        with self._lock:
            thread, loop, stopping = self._thread, self._loop, self._stopping
            self._thread, self._broker = None, None  # publish() refuses from now on
            if thread is None or loop is None or stopping is None:
                return
            loop.call_soon_threadsafe(stopping.set)
            thread.join(STOP_TIMEOUT_S + 5)

    def _config(self) -> Any:
        return BrokerConfig(
            listeners={"default": ListenerConfig(type=ListenerType.TCP, bind=f"{self.host}:{self.port}")},
            plugins={f"{__name__}.{Authorizer.__qualname__}": self._plugin},
            session_expiry_interval=SESSION_EXPIRY_S,
        )

    async def _open(self, sock: socket.socket) -> HardenedBroker:
        broker = HardenedBroker(self._config(), sock)  # in the loop: amqtt's Broker takes the running one
        await broker.start()
        return broker

    def _run(self, sock: socket.socket, started: threading.Event, failed: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        try:
            broker = loop.run_until_complete(self._open(sock))
            stopping = asyncio.Event()
        except BaseException as exc:
            failed.append(exc)
            sock.close()
            loop.close()
            started.set()
            return
        self._loop, self._stopping, self._broker = loop, stopping, broker
        started.set()
        try:
            loop.run_until_complete(stopping.wait())
            loop.run_until_complete(asyncio.wait_for(broker.shutdown(), STOP_TIMEOUT_S))
        except Exception:
            log.warning("MQTT: the broker did not stop cleanly", exc_info=True)
        finally:
            sock.close()
            loop.run_until_complete(cancel_all())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()
