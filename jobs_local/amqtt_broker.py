"""amqtt's part of the embedded broker (jobs_local/broker.py says what it enforces): the plugin
that authorizes (`Authorizer`, amqtt's auth and topic plugin, named by class path in its config),
and `_Broker`, which overrides a few of amqtt 0.12's own steps (pinned), each saying why."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from amqtt.adapters import StreamReaderAdapter, StreamWriterAdapter  # type: ignore[import-untyped]
from amqtt.broker import Broker  # type: ignore[import-untyped]
from amqtt.contexts import Action  # type: ignore[import-untyped]
from amqtt.errors import AMQTTError, MQTTError, NoDataError  # type: ignore[import-untyped]
from amqtt.mqtt.connack import BAD_USERNAME_PASSWORD, NOT_AUTHORIZED, SERVER_UNAVAILABLE, ConnackPacket  # type: ignore[import-untyped]
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler  # type: ignore[import-untyped]
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin  # type: ignore[import-untyped]
from amqtt.utils import gen_client_id  # type: ignore[import-untyped]

from jobs_core.domain import notifications
from jobs_core.domain.notifications import Device
from jobs_core.settings import settings

MAX_PACKET_BYTES = 128 * 1024  # AWS IoT Core's message size limit
CONNECT_TIMEOUT_S = 10.0  # for the CONNECT of a new connection
SESSION_EXPIRY_S = 3600  # a persistent session, once its client is gone (AWS IoT's default: 1 hour)
STOP_TIMEOUT_S = 15.0
PUBLISH_TIMEOUT_S = 10.0
_WHO = "iotjobs.client"  # session.attributes: the Client the authorizer accepted
_REFUSAL = "iotjobs.refusal"  # session.attributes: the CONNACK return code of a refusal
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Client:
    """Who a connection is: a device, or (device None) the service."""

    device: Device | None

    def session_key(self, client_id: str) -> str:
        """amqtt's key for the session: who connected, then the client id it chose."""
        who = [] if self.device is None else [self.device.tenant_id, self.device.device_id]
        return json.dumps([*who, client_id])


def may_publish(client: Client, topic: str) -> bool:
    """The service publishes under `{prefix}/`, never to a `$` topic or a wildcard; devices publish nothing."""
    return (
        client.device is None
        and topic.startswith(settings().push_topic_prefix + "/")
        and not any(c in topic for c in "+#\0")
    )


def may_subscribe(client: Client, topic_filter: str) -> bool:
    """A device reads its own topics; the service reads nothing."""
    return client.device is not None and notifications.may_subscribe(client.device, topic_filter)


class Authorizer(BaseAuthPlugin, BaseTopicPlugin):  # type: ignore[misc]  # amqtt carries no type information
    """amqtt's auth and topic plugin: who a CONNECT is (kept in the session), what it may do."""

    @dataclass
    class Config:
        identify: Any  # Callable[[str | None], Device | None], blocking (dacite checks no Callable)
        service_username: str
        service_password: str

    async def authenticate(self, *, session: Any) -> bool:
        client, refusal = await self._who(session.username, session.password)
        if client is None:
            session.attributes[_REFUSAL] = refusal
            return False
        session.attributes[_WHO] = client
        if session.will_flag and not may_publish(client, session.will_topic or ""):
            session.will_flag = False  # a will is a publish, which amqtt would send unchecked: dropped
        return True

    async def _who(self, username: str | None, password: str | None) -> tuple[Client | None, int]:
        if not username or password is None:
            return None, NOT_AUTHORIZED
        config = self.config
        if _same(username, config.service_username) and _same(password, config.service_password):
            return Client(None), 0
        try:
            device = await asyncio.get_running_loop().run_in_executor(None, config.identify, password)
        except Exception:  # the database away: the device retries later
            log.warning("MQTT: could not identify a device", exc_info=True)
            return None, SERVER_UNAVAILABLE
        if device is None or device.device_id != username:
            return None, BAD_USERNAME_PASSWORD
        return Client(device), 0

    async def topic_filtering(self, *, session: Any = None, topic: str | None = None, action: Any = None) -> bool:
        client = session.attributes.get(_WHO) if session is not None else None
        if client is None or topic is None:
            return False
        if action == Action.PUBLISH:
            return may_publish(client, topic)
        if action == Action.SUBSCRIBE:
            return may_subscribe(client, topic)
        return bool(action == Action.RECEIVE)  # through a subscription, checked when it was made


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


class _Refused(Exception):
    """Ends a connection: the packet its client sent next is over MAX_PACKET_BYTES or malformed."""


class _Framed(StreamReaderAdapter):  # type: ignore[misc]
    """Hands amqtt's parser the bytes of one whole MQTT packet at a time, checked before its body
    is read (amqtt has no limit: it would buffer the 256 MiB a fixed header may announce). A parse
    that reads on past a packet's end is refused too (it would wait for bytes that may never come).
    Past a refusal every read fails, which amqtt takes as the end of the connection."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        super().__init__(reader)
        self._stream = reader
        self._buffer = bytearray()
        self._refused = False

    async def read(self, n: int = -1) -> bytes:
        try:
            if self._refused:
                raise _Refused("")
            if not self._buffer:
                self._buffer += await self._packet()
            if len(self._buffer) < n:  # amqtt's parser reads on past the packet's end
                raise _Refused("a packet shorter than its contents")
        except _Refused as refused:
            if not self._refused:
                self._refused = True
                log.warning("MQTT: connection ended, %s", refused)
            raise asyncio.IncompleteReadError(b"", n) from None
        size = len(self._buffer) if n < 0 else n
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    async def _packet(self) -> bytes:
        packet = bytearray(await self._stream.readexactly(1))
        length, multiplier = 0, 1
        for _ in range(4):
            byte = (await self._stream.readexactly(1))[0]
            packet.append(byte)
            length += (byte & 0x7F) * multiplier
            multiplier *= 128
            if not byte & 0x80:
                break
        else:
            raise _Refused("a malformed remaining length")
        if length > MAX_PACKET_BYTES:
            raise _Refused(f"a packet of {length} bytes (at most {MAX_PACKET_BYTES})")
        packet += await self._stream.readexactly(length)
        return bytes(packet)


def _filters(topic: str, subscribed: dict[str, Any], matches: Callable[[str, str], bool]) -> list[str]:
    """The subscribed filters that match a topic: of the 4 * 2^levels filters that could, those
    subscribed; or, when there are fewer subscriptions than that, those that match."""
    levels = topic.split("/")
    if 4 << len(levels) > len(subscribed):
        return [f for f in subscribed if matches(topic, f)]
    found, prefixes = [], [""]
    for level in levels:
        found += [p + "#" for p in prefixes]  # `#` matches this level and all below
        prefixes = [p + choice + "/" for p in prefixes for choice in (level, "+")]
    found += [p[:-1] for p in prefixes] + [p + "#" for p in prefixes]  # `a/#` matches `a` too
    if topic.startswith("$"):  # a `$` topic is not matched by a filter starting with a wildcard
        found = [f for f in found if f[0] not in "+#"]
    return [f for f in found if f in subscribed]


class _Handler(BrokerProtocolHandler):  # type: ignore[misc]  # amqtt carries no type information
    def handle_read_timeout(self) -> None:
        # Nothing from the client for 1.5 keep-alives: its connection ends (amqtt's broker waits on).
        if self.reader is not None:
            self.reader.feed_eof()


class HardenedBroker(Broker):  # type: ignore[misc]  # amqtt carries no type information
    """amqtt's broker, with these steps of its own replaced (amqtt 0.12.1's private methods)."""

    def __init__(self, config: Any, sock: socket.socket) -> None:
        super().__init__(config)
        self._sock = sock

    async def _create_server_instance(self, listener_name: str, *args: Any) -> asyncio.Server:
        # On the socket start() bound: a port in use is start()'s OSError, not a logged crash.
        connected = partial(self.stream_connected, listener_name=listener_name)
        return await asyncio.start_server(connected, sock=self._sock, backlog=1024, limit=MAX_PACKET_BYTES)

    async def stream_connected(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, listener_name: str
    ) -> None:
        # Packets size-checked; whatever happens, the connection is closed at its end (amqtt leaves
        # open one that fails before its CONNECT is accepted, and lets some errors escape).
        try:
            await self._client_connected(listener_name, _Framed(reader), StreamWriterAdapter(writer))
        except Exception:
            log.warning("MQTT: a connection ended in error", exc_info=True)
        finally:
            writer.close()

    async def _initialize_client_session(self, reader: Any, writer: Any, address: str, port: int) -> tuple[Any, Any]:
        # amqtt finds the CONNECT's session by client id alone (deleting it, for a clean session)
        # before the auth plugins have their say: here they decide first, a refused client touches
        # no session, and a session's key names who connected, so no client takes over, or
        # inherits, the session of another.
        try:
            handler, session = await asyncio.wait_for(
                _Handler.init_from_connect(reader, writer, self.plugins_manager), CONNECT_TIMEOUT_S
            )
        except (AMQTTError, MQTTError, NoDataError):
            raise
        except TimeoutError:
            raise MQTTError(f"no CONNECT within {CONNECT_TIMEOUT_S:g} s") from None
        except Exception as exc:  # garbage in the CONNECT: amqtt's parser raises what it meets
            raise MQTTError(f"unreadable CONNECT ({exc!r})") from None
        if not await super()._authenticate(session, None):
            code = session.attributes.get(_REFUSAL, NOT_AUTHORIZED)
            await ConnackPacket.build(0, code).to_stream(writer)
            await writer.close()
            raise MQTTError(f"CONNECT refused (return code {code})")
        client: Client = session.attributes[_WHO]
        session.client_id = client.session_key(session.client_id or gen_client_id())
        session.parent = 0
        session.keep_alive += (session.keep_alive + 1) // 2  # silent that long, a client is gone (MQTT 3.1.2.10)
        if session.clean_session:
            if (previous := self._sessions.get(session.client_id)) and previous[0].transitions.is_connected():
                await previous[1].handle_connection_closed()  # taken over (amqtt would leave it open)
            await self._delete_session(session.client_id)
        elif session.client_id in self._sessions:  # as amqtt does: the session goes on, with this CONNECT's terms
            existing = self._sessions[session.client_id][0]
            for name in ("will_flag", "will_message", "will_topic", "will_qos", "keep_alive", "username", "password"):
                setattr(existing, name, getattr(session, name))
            existing.attributes[_WHO] = client
            session, session.parent = existing, 1
        return handler, session

    async def _run_broadcast(self, running_tasks: Any) -> None:
        # amqtt tries each message on every subscription's filter, formatting a debug line for each
        # miss (1,000 devices subscribed: about 2 ms a message); here the matching ones are looked up.
        broadcast = await self._broadcast_queue.get()
        topic = broadcast["topic"]
        for topic_filter in _filters(topic, self._subscriptions, self._matches):
            for session, subscribed_qos in list(self._subscriptions.get(topic_filter, ())):
                qos = broadcast.get("qos", subscribed_qos)
                if not await self._topic_filtering(session, topic=topic, action=Action.RECEIVE):
                    continue
                if session.transitions.state != "connected":  # kept for a persistent session, as amqtt does
                    if not session.clean_session and qos in (1, 2) and not session.is_anonymous:
                        await self._retain_broadcast_message(broadcast, qos, session)
                    continue
                if handler := self._get_handler(session):
                    sent = handler.mqtt_publish(topic, broadcast["data"], qos, retain=False)
                    running_tasks.append(asyncio.ensure_future(sent))

    async def _authenticate(self, session: Any, listener: Any) -> bool:
        # amqtt asks again once the session is found: the plugins answered in _initialize_client_session.
        return _WHO in session.attributes

    async def _handle_message_delivery(self, session: Any, handler: Any, delivered: asyncio.Future[Any]) -> bool:
        # amqtt answers a PUBLISH to a `$` topic, a wildcard or no topic by leaving the client's
        # message loop, which leaves its connection open and its session 'connected' for good:
        # a `$` topic is dropped as any publish not allowed, the others end the connection.
        message = delivered.result()
        if message is not None and (message.topic or "").startswith("$"):
            log.info("MQTT: %s may not publish to %s", session.client_id, message.topic)
            return True
        if not await super()._handle_message_delivery(session, handler, delivered):
            await handler.handle_connection_closed()
        return True


async def queue_messages(broker: HardenedBroker, batch: list[tuple[str, bytes]]) -> None:
    for topic, payload in batch:
        await broker.internal_message_broadcast(topic, payload, 1)


async def cancel_all() -> None:
    """What amqtt left running once it is shut down."""
    leftover = asyncio.all_tasks() - {asyncio.current_task()}
    for task in leftover:
        task.cancel()
    await asyncio.gather(*leftover, return_exceptions=True)
