"""`make run` as a new user meets it: one line on the terminal, the sweep on the template's
schedule, an HTTP server that answers edge cases as real ones do, a busy port said in one line,
the embedded database stopped by whatever started it on any exit; and jobsctl's errors."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import psycopg
import pytest
from psycopg.rows import dict_row

from jobs_core.domain import devices, executions, jobs_create
from jobs_core.domain.job_settings import JobCreate, Rollout
from jobs_core.domain.models import ExecutionUpdate
from jobs_core.store.db import Database
from jobs_local.devdb import ROOT
from jobs_local.pooler import free_port
from tests.conftest import local_server
from tests.factories import expire_job


def raw_http(base_url: str, data: bytes) -> bytes:
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(data)
        received = b""
        while True:
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            received += chunk
    return received


def test_the_terminal_shows_one_line_and_the_sweep_runs_on_the_schedule(
    env: dict[str, str], tmp_path: Path, tenant: str
) -> None:
    db = Database(lambda refresh: env["DATABASE_URL"])
    devices.register(db, tenant, ["d1"])
    jobs_create.create(db, tenant, "ops", JobCreate(job_id="j", document_type="x", target_all=True))
    db.close()
    with local_server({**env, "LOCAL_SCHEDULE_EVERY_S": "1"}, tmp_path / "server.log"):
        with psycopg.connect(
            env["DATABASE_URL"], autocommit=True, row_factory=dict_row, prepare_threshold=None
        ) as admin:
            expire_job(admin, tenant, "j")
            # The row commits before the sweep's line is logged: wait for both, inside the server's life.
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                row = admin.execute("SELECT status FROM job_executions WHERE tenant_id = %s", [tenant]).fetchone()
                logged = "SweepExpiredFunction: {" in (tmp_path / "server.log").read_text()
                if row == {"status": "TIMED_OUT"} and logged:
                    break
                time.sleep(0.2)
        assert row == {"status": "TIMED_OUT"}
        assert logged, (tmp_path / "server.log").read_text()[-4000:]
    shown = (tmp_path / "server.terminal").read_text().splitlines()
    assert len(shown) == 2 and shown[0].startswith("IoT Jobs on http://127.0.0.1:") and "jobsctl.py token" in shown[1]


def test_http_edge_cases_get_real_answers(base_url: str) -> None:
    head = raw_http(base_url, b"HEAD /openapi.json HTTP/1.1\r\nHost: x\r\n\r\nGET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n")
    first, _, rest = head.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200") and b"content-length:" in first.lower()
    assert rest.startswith(b"HTTP/1.1 404")  # no body after the HEAD answer: the next answer follows at once
    for length in (b"-1", b"abc", b"1e3"):
        answer = raw_http(
            base_url,
            b"PUT /device/v1/jobs/j/execution HTTP/1.1\r\nHost: x\r\nContent-Length: " + length + b"\r\n\r\n{}",
        )
        status, _, body = answer.partition(b"\r\n\r\n")
        assert status.startswith(b"HTTP/1.1 400"), answer[:200]
        assert json.loads(body) == {"message": "Content-Length is not a length"}


def test_a_busy_port_is_one_line(env: dict[str, str], tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "jobs_local.server", "--port", str(port), "--log", str(tmp_path / "log")],
            env={**env, "MQTT_PORT": str(free_port()), "S3_PORT": str(free_port())},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert done.stdout.strip().splitlines() == [
        f"error: port {port} is in use (another `make run`?); try PORT=3001 make run"
    ]
    assert "Traceback" not in done.stdout + done.stderr


def postgres_running(pgdata: Path) -> bool:
    return any(
        p.info["name"] == "postgres" and str(pgdata) in " ".join(p.info["cmdline"] or [])
        for p in psutil.process_iter(attrs=("name", "cmdline"))
    )


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of a user without DATABASE_URL, with an embedded database of this test's own."""
    pgdata = tmp_path / "pgdata"
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | {
        "JOBS_LOCAL_PGDATA": str(pgdata),
        "MQTT_PORT": str(free_port()),
        "S3_PORT": str(free_port()),
    }
    yield env
    subprocess.run([sys.executable, "-c", "from jobs_local import devdb; devdb.database_url()"], env=env, timeout=60)
    assert not postgres_running(pgdata)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_the_embedded_database_stops_with_the_server(embedded: dict[str, str], tmp_path: Path, signum: int) -> None:
    pgdata = Path(embedded["JOBS_LOCAL_PGDATA"])
    port = free_port()
    with (tmp_path / "terminal").open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "jobs_local.server", "--port", str(port), "--log", str(tmp_path / "log")],
            env=embedded,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while "IoT Jobs on" not in (tmp_path / "terminal").read_text():
        assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "log").read_text()[-3000:]
        time.sleep(0.2)
    assert postgres_running(pgdata)

    server.send_signal(signum)
    server.wait(30)

    assert not postgres_running(pgdata)


def test_a_holder_that_died_does_not_keep_the_database_up(embedded: dict[str, str]) -> None:
    pgdata = Path(embedded["JOBS_LOCAL_PGDATA"])
    jobsctl = [sys.executable, "tools/jobsctl.py", "migrate"]
    assert subprocess.run(jobsctl, env=embedded, cwd=ROOT, capture_output=True, timeout=120).returncode == 0
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (pgdata / ".handle_pids.json").write_text(json.dumps([dead.pid]))  # killed before its atexit ran

    assert subprocess.run(jobsctl, env=embedded, cwd=ROOT, capture_output=True, timeout=120).returncode == 0

    assert not postgres_running(pgdata)


def jobsctl(env: dict[str, str], *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "tools/jobsctl.py", *args], env=env, cwd=ROOT, input=stdin, capture_output=True, timeout=60
    )


@pytest.mark.parametrize(
    ("args", "stdin", "says"),
    [
        (("device", "add", "TENANT", ""), b"", "error: not a device id: ''"),
        (("device", "add", "TENANT", "bad id/x"), b"", "error: not a device id: 'bad id/x'"),
        (("device", "add", "bad tenant", "d1"), b"", "error: not a tenant id: 'bad tenant'"),
        (("device", "import", "TENANT"), b"d7\nd8\nd7\n", "error: listed more than once: d7"),
        (("device", "import", "TENANT"), b"d9\nknown\n", "error: already registered: known"),
        (("device", "import", "TENANT"), b"d1\n\xff\xfe\n", "error: standard input is not UTF-8 text"),
        (("group", "add", "TENANT", "g", "known", "ghost"), b"", "error: not registered devices of TENANT: ghost"),
        (("sweep", "--now", "2026-11-24T12:00:00"), b"", "give the offset too"),
    ],
)
def test_jobsctl_errors_are_one_line(
    env: dict[str, str], tenant: str, args: tuple[str, ...], stdin: bytes, says: str
) -> None:
    assert jobsctl(env, "device", "add", tenant, "known").returncode == 0
    done = jobsctl(env, *(tenant if a == "TENANT" else a for a in args), stdin=stdin)
    err = done.stderr.decode()
    assert done.returncode == 2 and says.replace("TENANT", tenant) in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 2  # argparse adds its usage line


def test_jobsctl_says_an_unreachable_database_in_one_line(env: dict[str, str]) -> None:
    done = jobsctl(
        {**env, "DATABASE_URL": "postgresql://x@127.0.0.1:1/x?connect_timeout=1"}, "device", "add", "acme", "d1"
    )
    assert done.returncode == 2
    assert done.stderr.decode().strip().splitlines() == [
        "error: the database is unreachable (OperationalError); is DATABASE_URL right?"
    ]


def test_group_add_counts_what_it_added(env: dict[str, str], tenant: str) -> None:
    jobsctl(env, "device", "import", tenant, stdin=b"a1\na2\na3\n")
    assert (
        jobsctl(env, "group", "add", tenant, "lab", "a1", "a2").stderr.decode().strip()
        == "group lab: 2 device(s) added"
    )
    assert (
        jobsctl(env, "group", "add", tenant, "lab", "a2", "a3").stderr.decode().strip()
        == "group lab: 1 device(s) added"
    )


def test_jobsctl_sweep_now_times_out_what_would_have_timed_out_by_then(env: dict[str, str], tenant: str) -> None:
    db = Database(lambda refresh: env["DATABASE_URL"])
    token = devices.register(db, tenant, ["d1"])["d1"]
    jobs_create.create(db, tenant, "ops", JobCreate(job_id="j", document_type="x", target_all=True, timeout_minutes=5))
    executions.update(db, token, "j", ExecutionUpdate(status="IN_PROGRESS"))
    db.close()
    soon, later = (datetime.now(UTC) + timedelta(minutes=m) for m in (4, 6))

    assert json.loads(jobsctl(env, "sweep", "--now", soon.isoformat()).stdout)["timed_out"] == 0
    swept = json.loads(jobsctl(env, "sweep", "--now", later.isoformat()).stdout)

    assert swept["timed_out"] >= 1
    with psycopg.connect(env["DATABASE_URL"], row_factory=dict_row, prepare_threshold=None) as admin:
        row = admin.execute("SELECT status FROM job_executions WHERE tenant_id = %s", [tenant]).fetchone()
    assert row == {"status": "TIMED_OUT"}


def test_jobsctl_sweep_now_releases_a_paced_rollout(env: dict[str, str], tenant: str) -> None:
    db = Database(lambda refresh: env["DATABASE_URL"])
    devices.register(db, tenant, [f"d{i:02d}" for i in range(12)])
    rollout = Rollout(maximum_per_minute=5)
    jobs_create.create(db, tenant, "ops", JobCreate(job_id="j", document_type="x", target_all=True, rollout=rollout))
    with psycopg.connect(env["DATABASE_URL"], row_factory=dict_row, prepare_threshold=None) as admin:
        row = admin.execute("SELECT created_at FROM jobs WHERE tenant_id = %s", [tenant]).fetchone()
        assert row is not None
        minute_later = row["created_at"] + timedelta(minutes=1)

        swept = jobsctl(env, "sweep", "--now", minute_later.isoformat())

        assert set(json.loads(swept.stdout)) == {"timed_out", "completed"}  # the contract's output, unchanged
        assert "released" in swept.stderr.decode()
        queued = admin.execute(
            "SELECT count(*) AS n FROM job_executions WHERE tenant_id = %s AND status = 'QUEUED'", [tenant]
        ).fetchone()
    assert queued == {"n": 10}  # 5 at once, 5 a minute later
    db.close()


def started_with_a_busy(
    variable: str, env: dict[str, str], tmp_path: Path
) -> tuple[int, subprocess.CompletedProcess[str]]:
    """The server started with the port `variable` names already taken (the others free)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ports = {"MQTT_PORT": str(free_port()), "S3_PORT": str(free_port()), variable: str(port)}
        done = subprocess.run(
            [sys.executable, "-m", "jobs_local.server", "--port", str(free_port()), "--log", str(tmp_path / "log")],
            env={k: v for k, v in env.items() if k not in ("MQTT_URL", "S3_ENDPOINT_URL")} | ports,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1 and "Traceback" not in done.stdout + done.stderr
    return port, done


def test_a_busy_mqtt_port_is_one_line(env: dict[str, str], tmp_path: Path) -> None:
    port, done = started_with_a_busy("MQTT_PORT", env, tmp_path)
    assert done.stdout.strip().splitlines() == [
        f"error: MQTT port {port} is in use; try MQTT_PORT={port + 1} make run"
        " (or MQTT_URL=mqtt://host:port to use a broker you run)"
    ]


def test_a_busy_s3_port_is_one_line(env: dict[str, str], tmp_path: Path) -> None:
    port, done = started_with_a_busy("S3_PORT", env, tmp_path)
    assert done.stdout.strip().splitlines() == [
        f"error: S3 port {port} is in use; try S3_PORT={port + 1} make run"
        " (or S3_ENDPOINT_URL=http://host:port to use an S3 you run)"
    ]


def test_a_bad_s3_endpoint_is_one_line(env: dict[str, str], tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "jobs_local.server", "--port", str(free_port()), "--log", str(tmp_path / "log")],
        env={**env, "MQTT_PORT": str(free_port()), "S3_ENDPOINT_URL": "http://s3.example/some/path"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stdout.strip().splitlines() == [
        "error: S3_ENDPOINT_URL must be http(s)://host[:port], not 'http://s3.example/some/path'"
    ]


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_killing_make_run_stops_every_part_it_started(embedded: dict[str, str], tmp_path: Path, signum: int) -> None:
    """`make run`'s own process killed: the server, its MQTT broker, its S3 and the embedded database stop."""
    pgdata = Path(embedded["JOBS_LOCAL_PGDATA"])
    port, mqtt_port, s3_port = free_port(), int(embedded["MQTT_PORT"]), int(embedded["S3_PORT"])
    terminal = tmp_path / "terminal"
    with terminal.open("w") as out:
        make = subprocess.Popen(
            ["make", "--no-print-directory", "run"],
            env={**embedded, "PORT": str(port)},
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 90
    while "IoT Jobs on" not in terminal.read_text():
        assert make.poll() is None and time.monotonic() < deadline, terminal.read_text()[-3000:]
        time.sleep(0.2)
    assert f"push over MQTT on mqtt://127.0.0.1:{mqtt_port}" in terminal.read_text()
    assert f"firmware files on S3 at http://127.0.0.1:{s3_port}" in terminal.read_text()
    assert listening(port) and listening(mqtt_port) and listening(s3_port) and postgres_running(pgdata)
    servers = psutil.Process(make.pid).children(recursive=True)
    assert servers

    make.send_signal(signum)
    make.wait(30)

    _, alive = psutil.wait_procs(servers, timeout=30)
    assert not alive, [p.cmdline() for p in alive]
    assert not listening(port) and not listening(mqtt_port) and not listening(s3_port)
    assert not postgres_running(pgdata)
