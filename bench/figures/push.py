"""24. Push, in tenants of their own: release -> notify-next for 1,000 subscribed devices on the
embedded broker and on Mosquitto (a job to all of them; a paced rollout's tick), measured from the
return of the call that committed to each device's receipt; requests and PostgreSQL CPU per
device-hour at rest, push with a one-hour safety poll against five-minute polling; a device update
that changes the head of its queue with the outbox against without (its trigger disabled, in
turn); a create for 100,000 devices with push against without, and how fast its outbox drains
afterwards. The outbox the earlier figures left is emptied first: nobody listens to those."""

from __future__ import annotations

import json
import multiprocessing
import secrets
import selectors
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from multiprocessing.connection import Connection

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from bench.dataset import BIG, Dataset, device_id, register_fleet, token
from bench.figures.pg_cpu import backend_cpu_ms
from bench.harness import Figure, percentile
from jobs_core.aws import notify
from jobs_core.domain import executions, jobs_cancel, jobs_create, notifications
from jobs_core.domain.job_settings import JobCreate
from jobs_core.domain.models import ExecutionUpdate, StartNext
from jobs_core.domain.sweep import sweep
from jobs_core.store.db import Database
from jobs_local import mosquitto
from jobs_local.broker import EmbeddedBroker
from jobs_local.pooler import free_port
from jobs_local.server import PushDrain

TENANT, UPDATES = "fleet-push", "fleet-push-updates"
SUBSCRIBED = 1000  # devices subscribed (100 with --smoke)
PUSH_TRIGGERS = ("job_executions_pushed_insert", "job_executions_pushed_update", "job_executions_pushed_delete")


class Fleet:
    """n devices' MQTT clients on one thread (paho's external loop over a selector), each subscribed
    to its own notify-next topic; keeps when each first saw a given job there."""

    def __init__(self, url: str, devices: list[tuple[str, str | None, str | None]]) -> None:
        host, port = url.removeprefix("mqtt://").split(":")
        self.selector = selectors.DefaultSelector()
        self.clients: list[mqtt.Client] = []
        self.subscribed = 0
        self.expected: str | None = None
        self.seen: dict[str, float] = {}
        self.changed = threading.Condition()
        for client_id, username, password in devices:
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
            if username is not None:
                client.username_pw_set(username, password)
            topic = f"iotjobs/{TENANT}/things/{client_id}/jobs/notify-next"
            client.on_connect = lambda c, u, f, reason, p, topic=topic: c.subscribe(topic, qos=1)
            client.on_subscribe = self._subscribed
            client.on_message = self._message
            client.connect(host, int(port), keepalive=1200)
            sock = client.socket()
            assert sock is not None
            self.selector.register(sock, selectors.EVENT_READ, client)
            self.clients.append(client)
        self.running = True
        self.thread = threading.Thread(target=self._loop, daemon=True, name="fleet")
        self.thread.start()
        with self.changed:
            assert self.changed.wait_for(lambda: self.subscribed == len(devices), timeout=120), self.subscribed

    def _subscribed(
        self, client: mqtt.Client, userdata: object, mid: int, reasons: list[ReasonCode], p: Properties
    ) -> None:
        with self.changed:
            self.subscribed += 1
            self.changed.notify_all()

    def _message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        at = time.time()  # wall clock: the devices run in a process of their own, the release time is the database's
        execution = json.loads(message.payload).get("execution") or {}
        with self.changed:
            who = message.topic.split("/")[3]
            if execution.get("jobId") == self.expected and who not in self.seen:
                self.seen[who] = at
                self.changed.notify_all()

    def _loop(self) -> None:
        last_misc = time.monotonic()
        while self.running:
            for key, _ in self.selector.select(0.02):
                key.data.loop_read()
            for client in self.clients:
                if client.want_write():
                    client.loop_write()
            if time.monotonic() - last_misc > 1:
                last_misc = time.monotonic()
                for client in self.clients:
                    client.loop_misc()

    def expect(self, job_id: str) -> None:
        with self.changed:
            self.expected, self.seen = job_id, {}

    def latencies(self, t0: float) -> list[float]:
        """Seconds from t0 (time.time) to each device's notify-next of the expected job."""
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.seen) == len(self.clients), timeout=120), len(self.seen)
            return [at - t0 for at in self.seen.values()]

    def close(self) -> None:
        self.running = False
        self.thread.join()
        for client in self.clients:
            client.disconnect()
            client.socket() and client.loop_write()  # the DISCONNECT goes out


def devices_process(conn: Connection, url: str, devices: list[tuple[str, str | None, str | None]]) -> None:
    """The devices, in a process of their own (as devices are not in the broker's): told which job
    to expect, then when its release committed; answers each device's latency."""
    fleet = Fleet(url, devices)
    conn.send("ready")
    while (command := conn.recv())[0] != "close":
        if command[0] == "expect":
            fleet.expect(command[1])
            conn.send("ok")
        else:
            conn.send(fleet.latencies(command[1]))
    fleet.close()


class RemoteFleet:
    def __init__(self, url: str, devices: list[tuple[str, str | None, str | None]]) -> None:
        self.conn, child = multiprocessing.get_context("spawn").Pipe()
        self.process = multiprocessing.get_context("spawn").Process(
            target=devices_process, args=(child, url, devices), daemon=True
        )
        self.process.start()
        assert self.conn.poll(180) and self.conn.recv() == "ready"

    def latencies(self, job_id: str, action: Callable[[], float | None]) -> list[float]:
        """Seconds from the release (the action's return, or the time it answers) to each device's
        notify-next of job_id."""
        self.conn.send(("expect", job_id))
        assert self.conn.recv() == "ok"
        released = action()
        self.conn.send(("collect", released if released is not None else time.time()))
        assert self.conn.poll(180)
        answer: list[float] = self.conn.recv()
        return answer

    def close(self) -> None:
        self.conn.send(("close",))
        self.process.join(30)


def created(data: Dataset, create: JobCreate) -> None:
    jobs_create.create(data.db, TENANT, "bench", create)  # its return: the commit


def ticked_at(data: Dataset, tick_at: datetime) -> float:
    """Run the sweep whose tick releases the job; the release's time: the sweep's start (a bound
    from above). A sweep half a minute before takes whatever else is due (other figures' rollouts),
    so that this one has the job's release alone to do."""
    sweep(data.db, now=tick_at - timedelta(seconds=30))
    started = time.time()
    sweep(data.db, now=tick_at)
    return started


def quiet(data: Dataset) -> None:
    """Until the drain has published everything due (the previous step's notices)."""
    deadline = time.monotonic() + 120
    while data.admin.execute("SELECT 1 FROM push_outbox LIMIT 1").fetchone() is not None:
        assert time.monotonic() < deadline, "the outbox does not drain"
        time.sleep(0.1)
    time.sleep(1.0)  # the last batch's messages on their way


@contextmanager
def draining(url: str, publisher: notify.Publisher) -> Iterator[PushDrain]:
    """The push drain of `make run`, woken after each commit that made work due."""
    drain = PushDrain(url, publisher)
    drain.start()
    previous = notifications.set_waker(drain.wake)
    try:
        yield drain
    finally:
        notifications.set_waker(previous)
        drain.stop()


def subscribed(data: Dataset) -> int:
    return 100 if data.quick else SUBSCRIBED


def run(data: Dataset) -> list[Figure]:
    data.admin.execute("TRUNCATE push_outbox")
    register_fleet(data.admin, TENANT, subscribed(data))
    out = []
    for name in ("embedded", "mosquitto"):
        out += release_latency(data, name)
    return [*out, at_rest(data), head_update(data), create_with_push(data)]


def release_latency(data: Dataset, broker_name: str) -> list[Figure]:
    with broker(data, broker_name) as (publisher, url, devices):
        fleet = RemoteFleet(url, devices)
        try:
            with draining(data.url, publisher):
                job = f"all-{broker_name}"
                create = JobCreate(job_id=job, document_type="firmware", target_all=True)
                to_all = fleet.latencies(job, lambda: created(data, create))
                jobs_cancel.cancel(data.db, TENANT, job, "bench")
                quiet(data)
                paced = f"paced-{broker_name}"
                jobs_create.create(
                    data.db,
                    TENANT,
                    "bench",
                    JobCreate.model_validate(
                        {"job_id": paced, "document_type": "firmware", "target_all": True,
                         "rollout": {"maximum_per_minute": subscribed(data)}}
                    ),
                )  # fmt: skip
                row = data.admin.execute(
                    "SELECT created_at FROM jobs WHERE tenant_id = %s AND job_id = %s", [TENANT, paced]
                ).fetchone()
                assert row is not None
                tick_at = row[0] + timedelta(minutes=1, seconds=1)
                ticked = fleet.latencies(paced, lambda: ticked_at(data, tick_at))
                jobs_cancel.cancel(data.db, TENANT, paced, "bench")
                quiet(data)
        finally:
            fleet.close()
    label = {"embedded": "the embedded broker (amqtt)", "mosquitto": "Mosquitto"}[broker_name]
    return [
        Figure(
            f"24. release -> notify-next, {subscribed(data):,} subscribed devices, {label}: {what}",
            f"p50 {percentile(samples, 50) * 1000:.0f} ms, p99 {percentile(samples, 99) * 1000:.0f} ms",
            "the goal: 1 s at p99",
            percentile(samples, 99),
            "p99 <= 1 s",
        )
        for what, samples in (("a job to all of them", to_all), ("a paced rollout's tick releasing them", ticked))
    ]


@contextmanager
def broker(
    data: Dataset, name: str
) -> Iterator[tuple[notify.Publisher, str, list[tuple[str, str | None, str | None]]]]:
    """The broker, how the service publishes to it (the embedded one: in its process, as `make run`
    does), its URL and the devices' credentials."""
    ids = [device_id(i) for i in range(subscribed(data))]
    if name == "embedded":
        identity = Database(lambda refresh: data.url)
        lock = threading.Lock()

        def identify(secret: str | None) -> notifications.Device | None:
            with lock:
                return notifications.identify(identity, secret)

        secret = secrets.token_urlsafe(16)
        embedded = EmbeddedBroker(
            port=free_port(), identify=identify, service_username="iot-jobs", service_password=secret
        )
        embedded.start()
        try:
            yield embedded, embedded.url, [(d, d, token(TENANT, i)) for i, d in enumerate(ids)]
        finally:
            embedded.stop()
            identity.close()
        return
    with mosquitto.running() as running:
        publisher = notify.MqttPublisher(running.url, running.username, running.password)
        try:
            yield (
                publisher,
                running.url,
                [(d, None, None) for d in ids],
            )  # Mosquitto's ACL: a device reads by its client id
        finally:
            publisher.close()


def at_rest(data: Dataset) -> Figure:
    """At rest nothing is due: no outbox row, no message; a device with push polls once an hour (its
    safety net), one without every five minutes. PostgreSQL's CPU of a poll with nothing pending,
    measured, times the polls of a device-hour each way."""
    me = token(BIG, data.take(1)[0])
    calls: list[Callable[[], object]] = [lambda: executions.pending(data.db, me)] * (200 if data.quick else 2000)
    poll_ms = backend_cpu_ms(data.db, calls) or 0.0
    push, polling = 1 * poll_ms, 12 * poll_ms
    return Figure(
        "24. at rest, per device-hour: push with a one-hour safety poll (MQTT keepalives reach the broker only)",
        f"1 request; PostgreSQL CPU {push:.3f} ms",
        f"five-minute polling: 12 requests; PostgreSQL CPU {polling:.3f} ms",
        1 / 12,
        "<= 1 request against 12",
    )


def head_update(data: Dataset) -> Figure:
    """Finishes (each ends its device's current execution: the head changes), in blocks of 50 with
    the outbox and without, in turn."""
    n = 400 if data.quick else 2000
    register_fleet(data.admin, UPDATES, n)
    jobs_create.create(data.db, UPDATES, "bench", JobCreate(job_id="head", document_type="x", target_all=True))
    for i in range(n):
        executions.start_next(data.db, token(UPDATES, i), StartNext())
    data.admin.execute("VACUUM ANALYZE job_executions")
    done = ExecutionUpdate(status="SUCCEEDED")
    with_push: list[float] = []
    without: list[float] = []
    for block in range(n // 50):
        push = block % 2 == 0
        set_push_triggers(data, push)
        for i in range(block * 50, block * 50 + 50):
            started = time.perf_counter()
            executions.update(data.db, token(UPDATES, i), "head", done)
            (with_push if push else without).append(time.perf_counter() - started)
    set_push_triggers(data, True)
    data.admin.execute("DELETE FROM push_outbox WHERE tenant_id = %s", [UPDATES])
    return Figure(
        "24. a device update that changes the head of its queue (finish), with the outbox",
        f"p50 {statistics.median(with_push) * 1000:.3f} ms, p99 {percentile(with_push, 99) * 1000:.3f} ms",
        f"without (the trigger off): p50 {statistics.median(without) * 1000:.3f} ms,"
        f" p99 {percentile(without, 99) * 1000:.3f} ms",
        statistics.median(with_push) / statistics.median(without),
        "<= 1.2",
    )


def set_push_triggers(data: Dataset, enabled: bool) -> None:
    for trigger in PUSH_TRIGGERS:
        data.admin.execute(f"ALTER TABLE job_executions {'ENABLE' if enabled else 'DISABLE'} TRIGGER {trigger}")


def create_with_push(data: Dataset) -> Figure:
    """A job for every device of the big tenant, with push and without, in turn; then the drain of
    what one create left, through Mosquitto."""
    ours: list[float] = []
    off: list[float] = []
    for i in range(2 if data.quick else 3):
        for push in (True, False) if i % 2 == 0 else (False, True):
            set_push_triggers(data, push)
            started = time.perf_counter()
            jobs_create.create(
                data.db, BIG, "bench", JobCreate(job_id=f"push-{i}-{push}", document_type="x", target_all=True)
            )
            (ours if push else off).append(time.perf_counter() - started)
    set_push_triggers(data, True)
    data.admin.execute("TRUNCATE push_outbox")  # one create's worth, for the drain
    jobs_create.create(data.db, BIG, "bench", JobCreate(job_id="push-drained", document_type="x", target_all=True))
    rows = data.admin.execute("SELECT count(*) FROM push_outbox").fetchone()
    due = int(rows[0]) if rows else 0
    with mosquitto.running() as running:
        publisher = notify.MqttPublisher(running.url, running.username, running.password)
        started = time.perf_counter()
        notifications.drain(data.db, lambda notices: notify.publish_notices(publisher, notices))
        drained_s = time.perf_counter() - started
        publisher.close()
    return Figure(
        f"24. create a job for {data.devices:,} devices, with push (its outbox rows in the same transaction)",
        f"{statistics.median(ours) * 1000:.0f} ms; then {due:,} devices told in {drained_s:.1f} s"
        f" ({due / drained_s:,.0f} a second, Mosquitto)",
        f"without push (the trigger off): {statistics.median(off) * 1000:.0f} ms",
        statistics.median(ours) / statistics.median(off),
        "<= 1.2",
    )
