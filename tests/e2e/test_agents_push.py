"""The example agents told of work by push: each subscribes to its notify-next topic on the local
server's embedded broker, works off what is pending, and runs what is created afterwards at once,
though its safety poll is an hour away; without a broker it still polls, when the service's hint
says (or every --interval); a lost broker is caught up with when it is back."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

from jobs_local import devjwt
from jobs_local.devdb import ROOT
from jobs_local.pooler import free_port
from tests.conftest import local_server
from tests.e2e.test_aws_api import ARN, control_plane
from tests.e2e.test_e2e_http import bearer, http
from tests.factories import Register

HINT_S = 5  # the server's poll hint (POLL_HINT_S, its least), jittered +-20% by the service
SAFETY_POLL_S = 3600  # what the agents with push are given: a poll that never comes in a test
PROMPTLY_S = 5.0  # a job created while an agent waits on push is done within this


@dataclass(frozen=True)
class Server:
    url: str
    mqtt_port: int

    @property
    def mqtt(self) -> str:
        return f"mqtt://127.0.0.1:{self.mqtt_port}"


@pytest.fixture(scope="module")
def server(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A local server of this module's own: its embedded broker on a port known here, and a poll
    hint short enough for a test to see an agent without push poll on it."""
    mqtt_port = free_port()
    environment = {k: v for k, v in env.items() if k not in ("MQTT_URL", "MQTT_USERNAME", "MQTT_PASSWORD")}
    environment |= {"MQTT_PORT": str(mqtt_port), "POLL_HINT_S": str(HINT_S)}
    with local_server(environment, tmp_path_factory.mktemp("push") / "server.log") as url:
        yield Server(url, mqtt_port)


class Agent:
    """An example agent in a process of its own, its output in files (an unread pipe fills up)."""

    def __init__(self, args: list[str], folder: Path) -> None:
        self.out, self.err = folder / "agent.out", folder / "agent.err"
        with self.out.open("w") as out, self.err.open("w") as err:
            self.process = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=out, stderr=err)

    def lines(self, stream: str) -> list[str]:
        return (self.out if stream == "out" else self.err).read_text().splitlines()

    def said(self) -> str:
        return f"stdout:\n{self.out.read_text()}\nstderr:\n{self.err.read_text()[-4000:]}"

    def wait_for(self, stream: str, start: str, count: int = 1, timeout: float = 10.0) -> list[str]:
        """The lines of stdout or stderr that start so, once there are `count` of them."""
        deadline = time.monotonic() + timeout
        while len(found := [line for line in self.lines(stream) if line.startswith(start)]) < count:
            assert self.process.poll() is None, f"the agent exited ({self.process.returncode})\n{self.said()}"
            assert time.monotonic() < deadline, f"no {start!r} on std{stream} within {timeout} s\n{self.said()}"
            time.sleep(0.05)
        return found

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextmanager
def agent(args: list[str], folder: Path) -> Iterator[Agent]:
    running = Agent(args, folder)
    try:
        yield running
    finally:
        running.stop()


def seconds(line: str) -> int:
    """The wait a "waiting..." line announces."""
    found = re.search(r"in (\d+) s\)?$", line)
    assert found, line
    return int(found.group(1))


def create_native_job(server: Server, tenant: str, job_id: str, device_id: str) -> None:
    body = {"job_id": job_id, "document_type": "reboot", "target_device_id": device_id}
    status, created = http(server.url, "POST", "/customer/jobs", headers=bearer(devjwt.mint(tenant)), body=body)
    assert status == 201, created


def native_agent(server: Server, token: str, *options: str) -> list[str]:
    return ["examples/device_agent.py", "--url", server.url, "--token", token, *options]


def aws_agent(server: Server, thing: str, token: str, *options: str) -> list[str]:
    return ["examples/aws_device_agent.py", "--endpoint", server.url, "--thing", thing, "--token", token, *options]


def test_the_agent_works_off_what_is_pending_then_runs_new_work_as_notify_next_tells_it(
    server: Server, tenant: str, register: Register, tmp_path: Path
) -> None:
    device, token = next(iter(register(tenant, 1, "sensor").items()))
    create_native_job(server, tenant, "before", device)
    push = ["--mqtt", server.mqtt, "--tenant", tenant, "--device", device, "--safety-poll", str(SAFETY_POLL_S)]
    with agent(native_agent(server, token, *push), tmp_path) as running:
        running.wait_for("out", "before: SUCCEEDED")
        [waiting] = running.wait_for("err", "waiting for notify-next")
        assert seconds(waiting) >= SAFETY_POLL_S * 0.8

        created = time.monotonic()
        create_native_job(server, tenant, "after", device)
        running.wait_for("out", "after: SUCCEEDED", timeout=PROMPTLY_S)
        assert time.monotonic() - created < PROMPTLY_S

        assert running.lines("out") == ["before: SUCCEEDED", "after: SUCCEEDED"]
        assert all(line.startswith("waiting for notify-next") for line in running.lines("err")), running.said()
    status, execution = http(server.url, "GET", "/device/v1/jobs/after/execution", headers={"X-Provision-Token": token})
    assert (status, execution["status"]) == (200, "SUCCEEDED")


def test_the_aws_agent_runs_new_work_as_notify_next_tells_it(
    server: Server, tenant: str, register: Register, tmp_path: Path
) -> None:
    thing, token = next(iter(register(tenant, 1, "thing").items()))
    push = ["--mqtt", server.mqtt, "--tenant", tenant, "--safety-poll", str(SAFETY_POLL_S)]
    with agent(aws_agent(server, thing, token, *push), tmp_path) as running:
        [waiting] = running.wait_for("err", "waiting for notify-next", timeout=20)
        assert seconds(waiting) >= SAFETY_POLL_S * 0.8

        iot = control_plane(server.url, tenant)
        created = time.monotonic()
        iot.create_job(
            jobId="fw-3",
            targets=[f"{ARN}:thing/{thing}"],
            document=json.dumps({"operation": "firmware", "version": "3"}),
        )
        running.wait_for("out", "fw-3 attempt 1: SUCCEEDED", timeout=PROMPTLY_S)
        assert time.monotonic() - created < PROMPTLY_S

        assert all(line.startswith("waiting for notify-next") for line in running.lines("err")), running.said()
    described = iot.describe_job_execution(jobId="fw-3", thingName=thing)["execution"]
    assert (described["status"], described["statusDetails"]) == ("SUCCEEDED", {"detailsMap": {"step": "done"}})


def test_without_a_broker_the_agent_polls_when_the_service_hints(
    server: Server, tenant: str, register: Register, tmp_path: Path
) -> None:
    device, token = next(iter(register(tenant, 1, "sensor").items()))
    nowhere = f"mqtt://127.0.0.1:{free_port()}"
    with agent(
        native_agent(server, token, "--mqtt", nowhere, "--tenant", tenant, "--device", device), tmp_path
    ) as running:
        running.wait_for("err", f"cannot reach the MQTT broker at {nowhere}; polling until it answers")
        [waiting] = running.wait_for("err", "waiting: a poll in")
        assert HINT_S * 0.8 - 1 <= seconds(waiting) <= HINT_S * 1.2 + 1  # the hint, not a default of minutes

        create_native_job(server, tenant, "polled", device)
        running.wait_for("out", "polled: SUCCEEDED", timeout=HINT_S * 1.2 + PROMPTLY_S)
        assert not any("notify-next" in line for line in running.lines("err")), running.said()


def test_without_a_broker_the_aws_agent_polls_every_interval(
    server: Server, tenant: str, register: Register, tmp_path: Path
) -> None:
    thing, token = next(iter(register(tenant, 1, "thing").items()))
    nowhere = f"mqtt://127.0.0.1:{free_port()}"
    options = ["--mqtt", nowhere, "--tenant", tenant, "--interval", "1"]
    with agent(aws_agent(server, thing, token, *options), tmp_path) as running:
        running.wait_for("err", f"cannot reach the MQTT broker at {nowhere}; polling until it answers", timeout=20)
        running.wait_for("err", "waiting: a poll in 1 s")

        iot = control_plane(server.url, tenant)
        iot.create_job(jobId="polled", targets=[f"{ARN}:thing/{thing}"], document=json.dumps({"operation": "reboot"}))
        running.wait_for("out", "polled attempt 1: SUCCEEDED", timeout=PROMPTLY_S)


class Relay:
    """A TCP relay between an agent and the broker that can cut the agent off (its connections
    closed, new ones closed at once) and let it back on."""

    def __init__(self, upstream_port: int) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.upstream_port = upstream_port
        self.open = threading.Event()
        self.open.set()
        self.stopped = threading.Event()
        self.lock = threading.Lock()
        self.links: list[socket.socket] = []
        self.connections = 0
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            if not self.open.is_set():
                conn.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            with self.lock:
                self.links += [conn, upstream]
                self.connections += 1
            for source, sink in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with suppress(OSError):
            sink.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.open.clear()
        with self.lock:
            links, self.links = self.links, []
        for link in links:
            with suppress(OSError):
                link.shutdown(socket.SHUT_RDWR)
            link.close()

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(5)
        self.cut()
        self.listener.close()


def test_the_agent_catches_up_with_what_came_while_the_broker_was_away(
    server: Server, tenant: str, register: Register, tmp_path: Path
) -> None:
    device, token = next(iter(register(tenant, 1, "sensor").items()))
    relay = Relay(server.mqtt_port)
    try:
        options = ["--mqtt", f"mqtt://127.0.0.1:{relay.port}", "--tenant", tenant, "--device", device]
        options += ["--safety-poll", str(SAFETY_POLL_S), "--interval", str(SAFETY_POLL_S)]  # no poll comes
        with agent(native_agent(server, token, *options), tmp_path) as running:
            running.wait_for("err", "waiting for notify-next")

            relay.cut()
            [away] = running.wait_for("err", "waiting: a poll in")  # push lost: polling, an hour away
            assert seconds(away) >= SAFETY_POLL_S * 0.8
            create_native_job(server, tenant, "while-away", device)
            relay.open.set()

            running.wait_for("out", "while-away: SUCCEEDED", timeout=10)  # paho reconnects within seconds
            running.wait_for("err", "waiting for notify-next", count=2)
            assert relay.connections == 2
    finally:
        relay.close()


def test_an_agent_the_broker_will_not_have_says_so_once_and_polls(
    server: Server, tenant: str, other_tenant: str, register: Register, tmp_path: Path
) -> None:
    """Another tenant's topic (a wrong --tenant): the broker refuses the subscription."""
    device, token = next(iter(register(tenant, 1, "sensor").items()))
    options = ["--mqtt", server.mqtt, "--tenant", other_tenant, "--device", device, "--interval", "1"]
    with agent(native_agent(server, token, *options), tmp_path) as running:
        topic = f"iotjobs/{other_tenant}/things/{device}/jobs/notify-next"
        running.wait_for("err", f"push is off: the broker refused the subscription to {topic}; polling instead")
        running.wait_for("err", "waiting: a poll in 1 s", count=2)

        create_native_job(server, tenant, "polled", device)
        running.wait_for("out", "polled: SUCCEEDED", timeout=PROMPTLY_S)
        assert sum("push is off" in line for line in running.lines("err")) == 1
