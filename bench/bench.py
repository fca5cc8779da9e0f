"""Benchmarks: each figure a ratio against a baseline measured in the same run, on a database of
its own (DATABASE_URL's server, or the embedded one).

    .venv/bin/python bench/bench.py [--devices 100000] [--out bench/RESULTS.md]
    .venv/bin/python bench/bench.py --smoke          # tiny sizes: the same code, in seconds

The dataset: one tenant with --devices devices (jobs of 10, 1k and --devices executions, and
enough more of --devices to list 50), a small tenant of 10 devices, and noise tenants.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg.rows import dict_row

from jobs_core import devices as registry
from jobs_core import executions, jobs
from jobs_core.db import Database
from jobs_core.migrate import migrate
from jobs_core.models import ExecutionUpdate, JobCreate
from jobs_core.sweep import sweep
from jobs_local import containers, devdb, template
from jobs_local.lambda_context import LocalContext
from jobs_local.roundtrips import RoundTripCounter
from jobs_local.server import api_gateway_event

ROOT = devdb.ROOT
BIG, SMALL = "fleet-big", "fleet-small"
Call = Callable[[], object]


@dataclass
class Figure:
    name: str
    value: str
    baseline: str
    ratio: float | None
    goal: str

    def row(self) -> str:
        ratio = "" if self.ratio is None else f"{self.ratio:.2f}"
        return f"| {self.name} | {self.value} | {self.baseline} | {ratio} | {self.goal} |"


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def timed(fn: Call, n: int, warmup: int = 20) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def interleaved(calls: dict[str, Call], n: int, warmup: int = 20) -> dict[str, list[float]]:
    """Samples of several calls taken in turn, so that a baseline and what is compared with it
    see the same moments of a noisy machine."""
    for _ in range(warmup):
        for fn in calls.values():
            fn()
    out: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(n):
        for name, fn in calls.items():
            t0 = time.perf_counter()
            fn()
            out[name].append((time.perf_counter() - t0) * 1000)
    return out


def ms(samples: list[float]) -> str:
    return f"p50 {percentile(samples, 50):.3f} ms, p99 {percentile(samples, 99):.3f} ms"


def p50_ratio(samples: list[float], baseline: list[float]) -> float:
    return percentile(samples, 50) / percentile(baseline, 50)


@contextmanager
def bench_database(server_url: str) -> Iterator[str]:
    name = f"jobs_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_conninfo(server_url, dbname=name)
    try:
        migrate(url)
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def register_fleet(admin: psycopg.Connection[Any], tenant: str, n: int) -> None:
    """n devices in one statement; device i's token is token(tenant, i) (stored hashed, as always)."""
    admin.execute(
        """
        INSERT INTO device_state (tenant_id, device_id, token_hash)
        SELECT %(t)s, 'dev-' || lpad(i::text, 7, '0'), encode(sha256((%(t)s || '-tok-' || i)::bytea), 'hex')
        FROM generate_series(0, %(n)s - 1) AS i
        """,
        {"t": tenant, "n": n},
    )


def token(tenant: str, i: int) -> str:
    return f"{tenant}-tok-{i}"


def device_id(i: int) -> str:
    return f"dev-{i:07d}"


@cache
def routes() -> list[template.Route]:
    return template.routes()


def handler_call(
    method: str, path: str, device_token: str, body: dict[str, Any] | None = None, expect: int = 200
) -> Call:
    """An in-process call of the handler behind a device route, with the event API Gateway sends."""
    found = template.route_for(method, path, routes())
    if found is None:
        raise LookupError(path)
    route, params = found
    handler = route.lambda_handler()
    data = json.dumps(body).encode() if body is not None else b""
    headers = {"x-provision-token": device_token, "content-type": "application/json"}
    event = api_gateway_event(route, method, path, headers, data, params, None, "127.0.0.1")
    context = LocalContext(function_name=route.function)

    def call() -> object:
        response = handler(event, context)
        assert response["statusCode"] == expect, response
        return response

    return call


def use_container_database(conninfo: str) -> Database:
    """Point the handlers' per-container database at conninfo (a fresh connection)."""
    import jobs_core.db as core_db
    from jobs_core.settings import settings

    if core_db._database is not None:
        core_db._database.close()
    os.environ["DATABASE_URL"] = conninfo
    settings.cache_clear()
    core_db._database = None
    database = core_db.database()
    database.connection()
    return database


# ------------------------------------------------------------------------------------------ 1, 2


def round_trips(url: str, db: Database) -> Figure:
    counter = RoundTripCounter(url)
    counted = Database(lambda refresh: counter.conninfo)
    counted.connection()
    jobs.create(db, SMALL, "bench", JobCreate(job_id="rt", document_type="x", target_all=True))
    me = token(SMALL, 0)
    calls: dict[str, Call] = {
        "pending": lambda: executions.pending(counted, me),
        "describe": lambda: executions.describe(counted, me, "rt"),
        "claim": lambda: executions.update(counted, me, "rt", ExecutionUpdate(status="IN_PROGRESS")),
        "progress": lambda: executions.update(
            counted, me, "rt", ExecutionUpdate(status="IN_PROGRESS", status_details={"p": 1})
        ),
        "finish": lambda: executions.update(counted, me, "rt", ExecutionUpdate(status="SUCCEEDED")),
    }
    trips = {}
    for name, call in calls.items():
        before = counter.count()
        call()
        trips[name] = counter.count() - before
    counted.close()
    counter.close()
    detail = ", ".join(f"{k} {v}" for k, v in trips.items())
    return Figure("1. round trips per device call", detail, "1", max(trips.values()), "1")


def warm_latency(
    url: str, db: Database, admin: psycopg.Connection[Any], reps: int, delay_s: float = 0.0
) -> list[Figure]:
    """Each device handler in-process (a warm container) against a bare SELECT 1 on its connection,
    and the update also against a bare one-row UPDATE (a durable write: its commit waits for the
    WAL flush). A call refused before the database shows what the handler costs around it."""
    relay = RoundTripCounter(url, delay_s=delay_s) if delay_s else None
    shared = use_container_database(relay.conninfo if relay else url)
    conn = shared.connection()
    admin.execute("CREATE TABLE IF NOT EXISTS bench_counter (id integer PRIMARY KEY, n integer NOT NULL)")
    admin.execute("INSERT INTO bench_counter VALUES (1, 0) ON CONFLICT DO NOTHING")
    admin.execute("GRANT SELECT, UPDATE ON bench_counter TO jobs_runtime")
    job_id = f"warm-{uuid.uuid4().hex[:6]}"
    jobs.create(db, SMALL, "bench", JobCreate(job_id=job_id, document_type="x", target_all=True))
    me = token(SMALL, 1)
    path = f"/device/v1/jobs/{job_id}/execution"
    handler_call("PUT", path, me, {"status": "IN_PROGRESS"})()
    samples = interleaved(
        {
            "SELECT 1": lambda: conn.execute("SELECT 1").fetchone(),
            "UPDATE": lambda: conn.execute("UPDATE bench_counter SET n = n + 1 WHERE id = 1"),
            "pending": handler_call("GET", "/device/v1/jobs/pending", me),
            "describe": handler_call("GET", path, me),
            "update (progress)": handler_call("PUT", path, me, {"status": "IN_PROGRESS", "status_details": {"p": 1}}),
            "refused": handler_call("PUT", path, me, {"status": "BOGUS"}, expect=422),
            # The same calls through the layer alone: our SQL, psycopg and the models, no Powertools.
            "layer: pending": lambda: executions.pending(shared, me),
            "layer: describe": lambda: executions.describe(shared, me, job_id),
            "layer: update (progress)": lambda: executions.update(
                shared, me, job_id, ExecutionUpdate(status="IN_PROGRESS", status_details={"p": 1})
            ),
        },
        reps,
    )
    where = f", {delay_s * 2000:.1f} ms network round trip" if delay_s else ""
    select1 = samples["SELECT 1"]
    out = [
        Figure(
            f"2. warm handler latency: {name}{where}",
            ms(samples[name]),
            f"SELECT 1: {ms(select1)}",
            p50_ratio(samples[name], select1),
            "<= 2.0",
        )
        for name in ("pending", "describe", "update (progress)")
    ]
    out.append(
        Figure(
            f"2. warm handler latency: update (progress){where}, against a durable write",
            ms(samples["update (progress)"]),
            f"one-row UPDATE: {ms(samples['UPDATE'])}",
            p50_ratio(samples["update (progress)"], samples["UPDATE"]),
            "<= 2.0",
        )
    )
    if not delay_s:
        out.append(
            Figure(
                "2. (the handler around the database: a PUT refused before it, 422)",
                ms(samples["refused"]),
                f"SELECT 1: {ms(select1)}",
                p50_ratio(samples["refused"], select1),
                "what no SQL can save",
            )
        )
        # Reads against a SELECT 1, the update against the durable write it is.
        baselines = {"pending": "SELECT 1", "describe": "SELECT 1", "update (progress)": "UPDATE"}
        out += [
            Figure(
                f"2. (the layer alone, without the handler: {name})",
                ms(samples[f"layer: {name}"]),
                f"{'one-row UPDATE' if base == 'UPDATE' else base}: {ms(samples[base])}",
                p50_ratio(samples[f"layer: {name}"], samples[base]),
                "our part of figure 2",
            )
            for name, base in baselines.items()
        ]
    if relay:
        relay.close()
    return out


# ------------------------------------------------------------------------------------------ 3, 4


def big_against_small(url: str, db: Database, admin: psycopg.Connection[Any], devices: int, reps: int) -> Figure:
    """Finishing an execution of the big job against one of a 10-device job: same work, other sizes."""
    n = min(reps // 5, devices - 1000, 200)
    jobs.create(db, SMALL, "bench", JobCreate(job_id="small-0", document_type="x", target_all=True))
    for k in range(1, n // 10 + 1):
        jobs.create(db, SMALL, "bench", JobCreate(job_id=f"small-{k}", document_type="x", target_all=True))
    big_finish, small_finish = [], []
    for i in range(n):
        big_token, job = token(BIG, 1000 + i), "big"  # devices 1000..1199
        executions.update(db, big_token, job, ExecutionUpdate(status="IN_PROGRESS"))
        t0 = time.perf_counter()
        executions.update(db, big_token, job, ExecutionUpdate(status="SUCCEEDED"))
        big_finish.append((time.perf_counter() - t0) * 1000)
        small_token, small_job = token(SMALL, i % 10), f"small-{i // 10}"
        executions.update(db, small_token, small_job, ExecutionUpdate(status="IN_PROGRESS"))
        t0 = time.perf_counter()
        executions.update(db, small_token, small_job, ExecutionUpdate(status="SUCCEEDED"))
        small_finish.append((time.perf_counter() - t0) * 1000)
    return Figure(
        f"3. finish an execution of a {devices:,}-device job",
        ms(big_finish),
        f"of a 10-device job: {ms(small_finish)}",
        p50_ratio(big_finish, small_finish),
        "<= 1.2",
    )


# The seed documents' own sequences: resolve the token, then read, then write, each a round trip,
# and on a terminal update COUNT(*) the job's unfinished executions (as the owner: no RLS there).
def seed_pending(conn: psycopg.Connection[Any], device_token: str) -> list[Any]:
    row = conn.execute(
        "SELECT tenant_id, device_id FROM device_state WHERE token_hash = %s", [registry.token_hash(device_token)]
    ).fetchone()
    assert row is not None
    return conn.execute(
        """
        SELECT e.job_id, e.execution_number, e.queued_at, j.document_type, j.document_params, j.expires_at
        FROM job_executions e JOIN jobs j USING (tenant_id, job_id)
        WHERE e.tenant_id = %s AND e.device_id = %s AND e.status = 'QUEUED'
          AND (j.expires_at IS NULL OR j.expires_at > NOW())
        ORDER BY e.queued_at ASC LIMIT 10
        """,
        [row["tenant_id"], row["device_id"]],
    ).fetchall()


def seed_update(conn: psycopg.Connection[Any], device_token: str, job_id: str, status: str) -> None:
    row = conn.execute(
        "SELECT tenant_id, device_id FROM device_state WHERE token_hash = %s", [registry.token_hash(device_token)]
    ).fetchone()
    assert row is not None
    tenant_id, dev = row["tenant_id"], row["device_id"]
    execution = conn.execute(
        "SELECT status, execution_number FROM job_executions WHERE tenant_id=%s AND job_id=%s AND device_id=%s",
        [tenant_id, job_id, dev],
    ).fetchone()
    assert execution is not None
    started = ", started_at = NOW()" if status == "IN_PROGRESS" else ""
    conn.execute(
        f"UPDATE job_executions SET status = %s, status_details = NULL, execution_number = execution_number + 1,"
        f" last_updated_at = NOW() {started} WHERE tenant_id=%s AND job_id=%s AND device_id=%s",
        [status, tenant_id, job_id, dev],
    )
    if status in ("SUCCEEDED", "FAILED", "TIMED_OUT", "REJECTED"):
        remaining = conn.execute(
            "SELECT COUNT(*) AS n FROM job_executions WHERE tenant_id=%s AND job_id=%s"
            " AND status NOT IN ('SUCCEEDED','FAILED','TIMED_OUT','REJECTED')",
            [tenant_id, job_id],
        ).fetchone()
        if remaining and remaining["n"] == 0:
            conn.execute(
                "UPDATE jobs SET status='COMPLETED', updated_at=NOW() WHERE tenant_id=%s AND job_id=%s",
                [tenant_id, job_id],
            )


def seed_against_ours(url: str, db: Database, devices: int, reps: int) -> list[Figure]:
    n = min(reps // 5, 200)
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as seed_conn:
        seed_poll = timed(lambda: seed_pending(seed_conn, token(BIG, 1500)), n)
        our_poll = timed(lambda: executions.pending(db, token(BIG, 1501)), n)
        seed_finish, our_finish = [], []
        for i in range(n):
            seed_token, our_token = token(BIG, 1502 + 2 * i), token(BIG, 1503 + 2 * i)  # ..1901
            seed_update(seed_conn, seed_token, "big", "IN_PROGRESS")
            t0 = time.perf_counter()
            seed_update(seed_conn, seed_token, "big", "SUCCEEDED")
            seed_finish.append((time.perf_counter() - t0) * 1000)
            executions.update(db, our_token, "big", ExecutionUpdate(status="IN_PROGRESS"))
            t0 = time.perf_counter()
            executions.update(db, our_token, "big", ExecutionUpdate(status="SUCCEEDED"))
            our_finish.append((time.perf_counter() - t0) * 1000)
    return [
        Figure(
            f"4. seed's pending sequence against ours ({devices:,}-device tenant)",
            f"seed {ms(seed_poll)}",
            f"ours {ms(our_poll)}",
            p50_ratio(seed_poll, our_poll),
            "speedup",
        ),
        Figure(
            f"4. seed's finish sequence against ours ({devices:,}-device job)",
            f"seed {ms(seed_finish)}",
            f"ours {ms(our_finish)}",
            p50_ratio(seed_finish, our_finish),
            "speedup",
        ),
    ]


# ------------------------------------------------------------------------------------------ 5, 6, 7


def fan_out(db: Database, admin: psycopg.Connection[Any], devices: int, tries: int) -> Figure:
    raw_times, ours_times = [], []
    for i in range(tries):
        admin.execute("INSERT INTO jobs (tenant_id, job_id, document_type) VALUES (%s, %s, 'raw')", [BIG, f"raw-{i}"])
        t0 = time.perf_counter()
        admin.execute(
            "INSERT INTO job_executions (tenant_id, job_id, device_id)"
            " SELECT tenant_id, %s, device_id FROM device_state WHERE tenant_id = %s",
            [f"raw-{i}", BIG],
        )
        raw_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        created = jobs.create(db, BIG, "bench", JobCreate(job_id=f"all-{i}", document_type="x", target_all=True))
        ours_times.append(time.perf_counter() - t0)
        assert created.execution_count == devices
    return Figure(
        f"5. create a job for {devices:,} devices",
        f"{statistics.median(ours_times) * 1000:.0f} ms",
        f"raw INSERT ... SELECT: {statistics.median(raw_times) * 1000:.0f} ms",
        statistics.median(ours_times) / statistics.median(raw_times),
        "<= 1.3",
    )


def sweep_figures(
    url: str, db: Database, admin: psycopg.Connection[Any], devices: int, tries: int, reps: int
) -> list[Figure]:
    """Time out whole expired jobs (all-i, made by fan_out) against a raw UPDATE of as many rows of
    another (raw-i), in alternating order; then device polls while one more sweep runs."""

    def expire(job_id: str) -> None:
        admin.execute(
            "UPDATE jobs SET expires_at = now() - interval '1 second' WHERE tenant_id = %s AND job_id = %s",
            [BIG, job_id],
        )

    def raw_update(job_id: str) -> float:
        t0 = time.perf_counter()
        admin.execute(
            "UPDATE job_executions SET status = 'TIMED_OUT', execution_number = execution_number + 1,"
            " last_updated_at = now() WHERE tenant_id = %s AND job_id = %s AND status IN ('QUEUED', 'IN_PROGRESS')",
            [BIG, job_id],
        )
        return time.perf_counter() - t0

    def our_sweep() -> tuple[float, Any]:
        t0 = time.perf_counter()
        swept = sweep(db, max_batches=10_000)
        elapsed = time.perf_counter() - t0
        assert swept.timed_out >= devices, swept
        return elapsed, swept

    raw_times, our_times = [], []
    for i in range(tries - 1):
        expire(f"all-{i}")
        if i % 2:
            our_times.append(our_sweep()[0])
            raw_times.append(raw_update(f"raw-{i}"))
        else:
            raw_times.append(raw_update(f"raw-{i}"))
            our_times.append(our_sweep()[0])
    raw, ours = statistics.median(raw_times), statistics.median(our_times)

    poller = Database(lambda refresh: url)

    def poll() -> None:
        executions.pending(poller, token(SMALL, 5))

    quiet = timed(poll, reps // 2)
    during: list[float] = []
    done = threading.Event()

    def keep_polling() -> None:
        while not done.is_set():
            t0 = time.perf_counter()
            poll()
            during.append((time.perf_counter() - t0) * 1000)

    expire(f"all-{tries - 1}")
    polling = threading.Thread(target=keep_polling)
    polling.start()
    _, swept = our_sweep()
    done.set()
    polling.join()
    poller.close()
    return [
        Figure(
            f"6. sweep {swept.timed_out:,} expired executions ({swept.batches} batches), median of {len(our_times)}",
            f"{ours * 1000:.0f} ms",
            f"raw UPDATE of {devices:,}: {raw * 1000:.0f} ms",
            ours / raw,
            "<= 1.5",
        ),
        Figure(
            "6. device poll while a sweep runs",
            ms(during),
            f"without a sweep: {ms(quiet)}",
            percentile(during, 99) / percentile(quiet, 99),
            "p99, no goal",
        ),
    ]


def listing(db: Database, devices: int, reps: int) -> Figure:
    created = {j.job_id for j in jobs.list_jobs(db, BIG, None, 200, 0) if j.total_executions == devices}
    for i in range(max(0, 50 - len(created))):
        jobs.create(db, BIG, "bench", JobCreate(job_id=f"list-{i}", document_type="x", target_all=True))
    for i in range(50):
        jobs.create(db, SMALL, "bench", JobCreate(job_id=f"list-{i}", document_type="x", target_all=True))
    page = jobs.list_jobs(db, BIG, None, 50, 0)
    assert len(page) == 50 and all(j.total_executions == devices for j in page)
    big = timed(lambda: jobs.list_jobs(db, BIG, None, 50, 0), reps // 5)
    small = timed(lambda: jobs.list_jobs(db, SMALL, None, 50, 0), reps // 5)
    return Figure(
        f"7. list 50 jobs of {devices:,} executions",
        ms(big),
        f"50 jobs of 10: {ms(small)}",
        p50_ratio(big, small),
        "<= 2",
    )


def hot_row(url: str, db: Database, devices: int, admin: psycopg.Connection[Any]) -> Figure:
    """Devices finishing one job together, against as many each finishing a job of its own: the
    same concurrency on this machine, so what differs is contention on the job's rows."""
    shown = admin.execute("SHOW max_connections").fetchone()
    finishers = min(100, devices, (int(shown[0]) if shown else 100) - 15)  # a container, a connection
    for i in range(finishers):
        executions.update(db, token(BIG, i), "big", ExecutionUpdate(status="IN_PROGRESS"))
        own = f"own-{i}"
        jobs.create(db, BIG, "bench", JobCreate(job_id=own, document_type="x", target_device_id=device_id(i)))
        executions.update(db, token(BIG, i), own, ExecutionUpdate(status="IN_PROGRESS"))
    separate = all_at_once(
        url,
        finishers,
        lambda d, i: executions.update(d, token(BIG, i), f"own-{i}", ExecutionUpdate(status="SUCCEEDED")),
    )
    together = all_at_once(
        url, finishers, lambda d, i: executions.update(d, token(BIG, i), "big", ExecutionUpdate(status="SUCCEEDED"))
    )
    return Figure(
        f"finish: {finishers} devices of one {devices:,}-device job at once",
        ms(together),
        f"{finishers} devices each finishing its own job at once: {ms(separate)}",
        percentile(together, 99) / percentile(separate, 99),
        "no hot row: about 1 (p99)",
    )


def all_at_once(url: str, n: int, work: Callable[[Database, int], Any]) -> list[float]:
    outcomes = containers.all_at_once(url, n, work)
    failed = [o.result for o in outcomes if isinstance(o.result, Exception)]
    assert not failed, failed[:3]
    return [o.ms for o in outcomes]


# ------------------------------------------------------------------------------------------ 8


def device_worker(url: str, first: int, count: int, seconds: float, start: Any, results: Any) -> None:
    """One container: its handlers in-process, its own connection, its own devices; a device's
    work is poll, claim, progress, finish, then poll again. Each distinct request's event is
    built once: making events is API Gateway's work, on other machines, not the container's."""
    steps = (
        {"status": "IN_PROGRESS"},
        {"status": "IN_PROGRESS", "status_details": {"p": 50}},
        {"status": "SUCCEEDED"},
    )
    events: dict[tuple[str, int], Call] = {}

    def request(path: str, me: str, step: int = -1) -> Call:
        key = (f"{path} {me}", step)
        if key not in events:
            events[key] = handler_call("PUT", path, me, steps[step]) if step >= 0 else handler_call("GET", path, me)
        return events[key]

    with open(os.devnull, "w") as devnull, redirect_stdout(devnull):
        backend = use_container_database(url).connection().info.backend_pid
        ops = 0
        start.wait()
        cpu_before, backend_before = time.process_time(), process_cpu_s(backend)
        deadline = time.perf_counter() + seconds
        i = 0
        while time.perf_counter() < deadline:
            me = token(BIG, first + i % count)
            i += 1
            pending = json.loads(str(request("/device/v1/jobs/pending", me)()["body"]))  # type: ignore[index]
            ops += 1
            if not pending["jobs"]:
                continue
            path = f"/device/v1/jobs/{pending['jobs'][0]['job_id']}/execution"
            for step in range(len(steps)):
                request(path, me, step)()
                ops += 1
        cpu, backend_after = time.process_time() - cpu_before, process_cpu_s(backend)
    backend_cpu = backend_after - backend_before if backend_after is not None and backend_before is not None else None
    results.put((ops, cpu, backend_cpu))


def process_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) of a process on this machine; None where /proc cannot tell
    (another machine's PostgreSQL, another OS)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def throughput(url: str, quick: bool) -> Figure:
    seconds = 0.5 if quick else 5.0
    curve = {}
    cpu_per_op = ""
    spawn = multiprocessing.get_context("spawn")
    offset = 2000  # devices 2000..2749
    for workers in (1, 2, 4, 8):
        start, results = spawn.Event(), spawn.Queue()
        procs = [
            spawn.Process(target=device_worker, args=(url, offset + w * 50, 50, seconds, start, results))
            for w in range(workers)
        ]
        offset += workers * 50
        for proc in procs:
            proc.start()
        time.sleep(1.5 if quick else 3.0)  # cold starts out of the way
        start.set()
        reports = [results.get(timeout=120) for _ in procs]
        for proc in procs:
            proc.join()
        total = sum(ops for ops, _, _ in reports)
        curve[workers] = total / seconds
        if workers == 2:  # as many workers as cores: where the CPU per operation shows the ceiling
            python_ms = 1000 * sum(cpu for _, cpu, _ in reports) / total
            backends = [b for _, _, b in reports if b is not None]
            postgres = f", PostgreSQL {1000 * sum(backends) / total:.2f} ms" if len(backends) == len(reports) else ""
            cpu_per_op = f"; CPU per operation at W=2: Python {python_ms:.2f} ms{postgres}"
    best = max(curve.values())
    return Figure(
        "8. device operations per second (poll, claim, progress, finish), W worker processes",
        ", ".join(f"W={w}: {v:,.0f}" for w, v in curve.items()) + cpu_per_op,
        f"W=1: {curve[1]:,.0f}",
        best / curve[1],
        ">= 2,000 ops/s",
    )


# ------------------------------------------------------------------------------------------ 9

COLD = r"""
import json, sys, time
t0 = time.perf_counter()
already = set(sys.modules)
import device_list_pending
t1 = time.perf_counter()
from jobs_local.lambda_context import LocalContext
event = json.load(open(sys.argv[1]))
event["headers"]["x-provision-token"] = sys.argv[2]
response = device_list_pending.lambda_handler(event, LocalContext())
t2 = time.perf_counter()
assert response["statusCode"] == 200, response
ours = ("jobs_core", "jobs_local", "device_")
loaded = [m for m in sys.modules if m not in already and not m.startswith(ours)]
print(json.dumps({"first": (t2 - t0) * 1000, "import": (t1 - t0) * 1000, "modules": loaded}))
"""

# The same third-party modules that serving the first event loaded, imported alone: what any
# handler built on the design card's libraries pays before a line of ours runs.
LIBRARIES = r"""
import importlib, json, sys, time
modules = json.loads(sys.argv[1])
t0 = time.perf_counter()
for name in modules:
    importlib.import_module(name)
print(json.dumps({"import": (time.perf_counter() - t0) * 1000}))
"""


def cold_start(url: str, quick: bool) -> Figure:
    # The environment the template gives every function, where it bears on start-up.
    template_env = template.load()["Globals"]["Function"]["Environment"]["Variables"]
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "PYDANTIC_DISABLE_PLUGINS": template_env["PYDANTIC_DISABLE_PLUGINS"],
    }
    event = str(ROOT / "events" / "device_list_pending.json")

    def run(*args: str) -> dict[str, Any]:
        done = subprocess.run([sys.executable, "-c", *args], env=env, capture_output=True, text=True, check=True)
        measured: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return measured

    firsts, imports, libraries, bare = [], [], [], []
    for _ in range(3 if quick else 15):  # in turn, so that all three see the same machine
        measured = run(COLD, event, token(SMALL, 2))
        firsts.append(measured["first"])
        imports.append(measured["import"])
        libraries.append(run(LIBRARIES, json.dumps(measured["modules"]))["import"])
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        bare.append((time.perf_counter() - t0) * 1000)
    first, libs = statistics.median(firsts), statistics.median(libraries)
    return Figure(
        f"9. cold start: import a device handler + serve its first event (Python {platform.python_version()})",
        f"median {first:.0f} ms (import {statistics.median(imports):.0f} ms)",
        f"the same third-party modules imported alone: {libs:.0f} ms; bare interpreter start:"
        f" {statistics.median(bare):.0f} ms",
        first / libs,
        "<= 250 ms",
    )


# ------------------------------------------------------------------------------------------


def figures(server_url: str, devices: int, quick: bool) -> list[Figure]:
    reps = 100 if quick else 2000
    out: list[Figure] = []
    with bench_database(server_url) as url, psycopg.connect(url, autocommit=True) as admin:
        register_fleet(admin, BIG, devices)
        register_fleet(admin, SMALL, 10)
        for noise in range(3):
            register_fleet(admin, f"noise-{noise}", max(10, devices // 10))
        # The operator's side: fan-outs of 100,000 rows, timed here, may take longer than the API's
        # statement timeout allows (see README); the bench measures their cost, not that limit.
        db = Database(lambda refresh: url, statement_timeout_ms=120_000)
        for size in (10, 1000):  # jobs of 10 and 1k executions in the big tenant, for the mix
            admin.execute(
                "INSERT INTO device_group_members (tenant_id, group_id, device_id)"
                " SELECT tenant_id, %s, device_id FROM device_state WHERE tenant_id = %s ORDER BY device_id LIMIT %s",
                [f"first-{size}", BIG, size],
            )
            jobs.create(
                db, BIG, "bench", JobCreate(job_id=f"job-{size}", document_type="x", target_group_id=f"first-{size}")
            )
        jobs.create(db, BIG, "bench", JobCreate(job_id="big", document_type="x", target_all=True))
        for noise in range(3):
            jobs.create(db, f"noise-{noise}", "bench", JobCreate(document_type="x", target_all=True))
        admin.execute("VACUUM ANALYZE")

        out.append(round_trips(url, db))
        out += warm_latency(url, db, admin, reps)
        out += warm_latency(url, db, admin, reps // 4, delay_s=0.00025)
        out.append(big_against_small(url, db, admin, devices, reps))
        out += seed_against_ours(url, db, devices, reps)
        tries = 2 if quick else 4
        out.append(fan_out(db, admin, devices, tries))
        out += sweep_figures(url, db, admin, devices, tries, reps)
        out.append(listing(db, devices, reps))
        admin.execute("VACUUM ANALYZE")  # what autovacuum does after a few million new rows
        out.append(hot_row(url, db, devices, admin))
        out.append(throughput(url, quick))
        out.append(cold_start(url, quick))
        import jobs_core.db as core_db

        if core_db._database is not None:
            core_db._database.close()
        db.close()
    return out


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check the code runs")
    parser.add_argument("--out", type=Path, help="also write the table here (e.g. bench/RESULTS.md)")
    args = parser.parse_args(argv)
    devices = 3000 if args.smoke else args.devices  # the figures use devices 0..2749 of the big tenant
    server_url = devdb.database_url()
    with psycopg.connect(server_url) as conn:
        version, host = conn.info.server_version, conn.info.host
    transport = "a unix socket" if host.startswith("/") else f"TCP to {host}"
    started = time.perf_counter()
    with open(os.devnull, "w") as devnull, redirect_stdout(devnull):  # the handlers' EMF metrics and logs
        rows = figures(server_url, devices, args.smoke)
    table = "\n".join(
        [
            "| figure | measured | baseline (same run) | ratio | goal |",
            "|---|---|---|---|---|",
            *(f.row() for f in rows),
        ]
    )
    print(table)
    print(f"\n({time.perf_counter() - started:.0f} s)")
    if args.out:
        header = (
            f"# Benchmark results\n\n{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, on {machine()}; "
            f"PostgreSQL {version // 10000}.{version % 100} over {transport}; "
            f"{devices:,} devices in the big tenant.\n\n"
            "Run with `make bench`. Latencies are in-process handler calls, what a warm Lambda container\n"
            "spends, against the PostgreSQL round trip they are built on, measured in the same run.\n\n"
        )
        notes = ROOT / "bench" / "NOTES.md"
        args.out.write_text(header + table + "\n" + (("\n" + notes.read_text()) if notes.exists() else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
