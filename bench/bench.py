"""Benchmarks: figures as ratios against a baseline measured in the same run, on a database of
their own (DATABASE_URL's server, or the embedded one).

    .venv/bin/python bench/bench.py [--devices 100000] [--out bench/RESULTS.md]
    .venv/bin/python bench/bench.py --smoke          # tiny sizes: the same code, in seconds

Printed as one table; with --out, also written with the date and the machine.
"""

from __future__ import annotations

import argparse
import json
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
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from jobs_core import executions, jobs
from jobs_core.db import Database
from jobs_core.migrate import migrate
from jobs_core.models import ExecutionUpdate, JobCreate
from jobs_local import devdb, template
from jobs_local.lambda_context import LocalContext
from jobs_local.roundtrips import RoundTripCounter
from jobs_local.server import api_gateway_event

ROOT = devdb.ROOT


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


def timed(fn: Callable[[], Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def ms(samples: list[float]) -> str:
    return f"p50 {percentile(samples, 50):.3f} ms, p99 {percentile(samples, 99):.3f} ms"


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
    """n devices in one statement; device i's token is f"{tenant}-tok-{i}" (stored hashed, as always)."""
    admin.execute(
        """
        INSERT INTO device_state (tenant_id, device_id, token_hash)
        SELECT %(t)s, 'dev-' || lpad(i::text, 7, '0'), encode(sha256((%(t)s || '-tok-' || i)::bytea), 'hex')
        FROM generate_series(0, %(n)s - 1) AS i
        """,
        {"t": tenant, "n": n},
    )
    admin.execute("ANALYZE")


def token(tenant: str, i: int) -> str:
    return f"{tenant}-tok-{i}"


def handler_for(function: str) -> tuple[template.Route, Callable[[dict[str, Any], Any], dict[str, Any]]]:
    route = next(r for r in template.routes() if r.function == function)
    return route, route.lambda_handler()


def device_event(
    function: str, method: str, path: str, device_token: str, body: dict[str, Any] | None = None
) -> Callable[[], dict[str, Any]]:
    route, handler = handler_for(function)
    params = route.match(method, path) or {}
    data = json.dumps(body).encode() if body is not None else b""
    headers = {"x-provision-token": device_token, "content-type": "application/json"}
    event = api_gateway_event(route, method, path, headers, data, params, None, "127.0.0.1")
    context = LocalContext(function_name=function)

    def call() -> dict[str, Any]:
        response = handler(event, context)
        assert response["statusCode"] == 200, response
        return response

    return call


def figures(server_url: str, devices: int, quick: bool) -> list[Figure]:
    out: list[Figure] = []
    reps = 50 if quick else 1000
    with bench_database(server_url) as url, psycopg.connect(url, autocommit=True) as admin:
        os.environ["DATABASE_URL"] = url
        big, small = "fleet-big", "fleet-small"
        register_fleet(admin, big, devices)
        register_fleet(admin, small, 10)
        register_fleet(admin, "noise-a", max(10, devices // 10))
        db = Database(lambda refresh: url)

        # --- 1. round trips per device call
        counter = RoundTripCounter(url)
        counted = Database(lambda refresh: counter.conninfo)
        counted.connection()
        jobs.create(db, small, "bench", JobCreate(job_id="rt", document_type="x", target_all=True))
        calls: dict[str, Callable[[], object]] = {
            "pending": lambda: executions.pending(counted, token(small, 0)),
            "describe": lambda: executions.describe(counted, token(small, 0), "rt"),
            "claim": lambda: executions.update(counted, token(small, 0), "rt", ExecutionUpdate(status="IN_PROGRESS")),
            "progress": lambda: executions.update(
                counted, token(small, 0), "rt", ExecutionUpdate(status="IN_PROGRESS", status_details={"p": 1})
            ),
            "finish": lambda: executions.update(counted, token(small, 0), "rt", ExecutionUpdate(status="SUCCEEDED")),
        }
        trips = {}
        for name, call in calls.items():
            before = counter.count()
            call()
            trips[name] = counter.count() - before
        counted.close()
        counter.close()
        out.append(
            Figure(
                "round trips per device call",
                ", ".join(f"{k} {v}" for k, v in trips.items()),
                "1",
                max(trips.values()),
                "1",
            )
        )

        # --- 2. warm in-process handler latency against SELECT 1 on the same connection
        import jobs_core.db as core_db

        core_db._database = None
        from jobs_core.settings import settings

        settings.cache_clear()
        shared = core_db.database()
        conn = shared.connection()
        for _ in range(50):
            conn.execute("SELECT 1").fetchone()
        select1 = timed(lambda: conn.execute("SELECT 1").fetchone(), reps)
        jobs.create(db, small, "bench", JobCreate(job_id="warm", document_type="x", target_all=True))
        pending = device_event("DeviceListPendingFunction", "GET", "/device/v1/jobs/pending", token(small, 1))
        describe = device_event("DeviceGetExecutionFunction", "GET", "/device/v1/jobs/warm/execution", token(small, 1))
        device_event(
            "DeviceUpdateExecutionFunction",
            "PUT",
            "/device/v1/jobs/warm/execution",
            token(small, 1),
            {"status": "IN_PROGRESS"},
        )()
        progress = device_event(
            "DeviceUpdateExecutionFunction",
            "PUT",
            "/device/v1/jobs/warm/execution",
            token(small, 1),
            {"status": "IN_PROGRESS", "status_details": {"pct": 1}},
        )
        # A write's floor is a durable commit, not SELECT 1: the same one-row UPDATE, autocommitted.
        bare_update = timed(
            lambda: admin.execute(
                "UPDATE job_executions SET last_updated_at = now() WHERE tenant_id = %s AND job_id = 'warm'"
                " AND device_id = 'dev-0000001'",
                [small],
            ),
            reps,
        )
        for name, invoke, floor, floor_name in [
            ("pending", pending, select1, "SELECT 1"),
            ("describe", describe, select1, "SELECT 1"),
            ("update (progress)", progress, select1, "SELECT 1"),
            ("update (progress), against a bare write", progress, bare_update, "one-row UPDATE, autocommit"),
        ]:
            for _ in range(50):
                invoke()
            samples = timed(invoke, reps)
            out.append(
                Figure(
                    f"warm handler latency: {name}",
                    ms(samples),
                    f"{floor_name} {ms(floor)}",
                    percentile(samples, 50) / percentile(floor, 50),
                    "<= 2.0 (p50)",
                )
            )

        # --- 3. cold start: a fresh process imports a device handler and serves its first event
        cold = []
        for _ in range(3 if quick else 10):
            cold.append(cold_start(url, token(small, 2)))
        out.append(
            Figure(
                "cold start: import + first event (device_list_pending)",
                f"median {statistics.median(c[0] for c in cold):.0f} ms"
                f" (import {statistics.median(c[1] for c in cold):.0f} ms)",
                f"bare interpreter {statistics.median(c[2] for c in cold):.0f} ms",
                None,
                "<= 250 ms",
            )
        )

        # --- 4. creating a job for the whole big fleet against a raw INSERT ... SELECT of as many rows
        raw_times, ours_times = [], []
        for i in range(1 if quick else 3):
            admin.execute(
                "INSERT INTO jobs (tenant_id, job_id, document_type) VALUES (%s, %s, 'raw')", [big, f"raw-{i}"]
            )
            t0 = time.perf_counter()
            admin.execute(
                "INSERT INTO job_executions (tenant_id, job_id, device_id)"
                " SELECT tenant_id, %s, device_id FROM device_state WHERE tenant_id = %s",
                [f"raw-{i}", big],
            )
            raw_times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            created = jobs.create(db, big, "bench", JobCreate(job_id=f"all-{i}", document_type="x", target_all=True))
            ours_times.append(time.perf_counter() - t0)
            assert created.execution_count == devices
        out.append(
            Figure(
                f"create a job for {devices:,} devices",
                f"{statistics.median(ours_times) * 1000:.0f} ms",
                f"raw INSERT ... SELECT {statistics.median(raw_times) * 1000:.0f} ms",
                statistics.median(ours_times) / statistics.median(raw_times),
                "<= 1.3",
            )
        )

        # --- 5. listing 50 jobs of the big fleet against 50 jobs of 10 devices
        for i in range(50 - (1 if quick else 3) * 2):
            jobs.create(db, big, "bench", JobCreate(job_id=f"list-{i}", document_type="x", target_all=True))
        for i in range(50):
            jobs.create(db, small, "bench", JobCreate(job_id=f"list-{i}", document_type="x", target_all=True))
        admin.execute("ANALYZE")
        list_big = timed(lambda: jobs.list_jobs(db, big, None, 50, 0), reps // 5)
        list_small = timed(lambda: jobs.list_jobs(db, small, None, 50, 0), reps // 5)
        assert len(jobs.list_jobs(db, big, None, 50, 0)) == 50
        out.append(
            Figure(
                f"list 50 jobs of {devices:,} executions",
                ms(list_big),
                f"50 jobs of 10: {ms(list_small)}",
                percentile(list_big, 50) / percentile(list_small, 50),
                "<= 2 (p50)",
            )
        )

        # --- 6. devices finishing one big job at once, against as many finishing jobs of their own:
        # the same concurrency on this machine, so what differs is contention on the job's rows.
        shown = admin.execute("SHOW max_connections").fetchone()
        max_connections = int(shown[0]) if shown else 100
        finishers = min(100, devices, max_connections - 15)  # each finisher is a container: a connection
        for i in range(finishers):
            executions.update(db, token(big, i), "all-0", ExecutionUpdate(status="IN_PROGRESS"))
            own = f"own-{i}"
            jobs.create(db, big, "bench", JobCreate(job_id=own, document_type="x", target_device_id=f"dev-{i:07d}"))
            executions.update(db, token(big, i), own, ExecutionUpdate(status="IN_PROGRESS"))
        separate = all_at_once(
            url,
            finishers,
            lambda d, i: executions.update(d, token(big, i), f"own-{i}", ExecutionUpdate(status="SUCCEEDED")),
        )
        together = all_at_once(
            url,
            finishers,
            lambda d, i: executions.update(d, token(big, i), "all-0", ExecutionUpdate(status="SUCCEEDED")),
        )
        out.append(
            Figure(
                f"finish: {finishers} devices of one {devices:,}-device job at once",
                ms(together),
                f"{finishers} devices finishing {finishers} separate jobs at once: {ms(separate)}",
                percentile(together, 99) / percentile(separate, 99),
                "no hot row: ~1 (p99)",
            )
        )
        db.close()
        shared.close()
    return out


def all_at_once(url: str, n: int, work: Callable[[Database, int], Any]) -> list[float]:
    barrier = threading.Barrier(n)
    latencies = [0.0] * n
    databases = [Database(lambda refresh: url) for _ in range(n)]
    for database in databases:
        database.connection()

    def run(i: int) -> None:
        barrier.wait()
        t0 = time.perf_counter()
        work(databases[i], i)
        latencies[i] = (time.perf_counter() - t0) * 1000

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for database in databases:
        database.close()
    return latencies


COLD = r"""
import json, sys, time
t0 = time.perf_counter()
import device_list_pending
t1 = time.perf_counter()
from jobs_local.lambda_context import LocalContext
event = json.load(open(sys.argv[1]))
event["headers"]["x-provision-token"] = sys.argv[2]
response = device_list_pending.lambda_handler(event, LocalContext())
t2 = time.perf_counter()
assert response["statusCode"] == 200, response
print(json.dumps({"first": (t2 - t0) * 1000, "import": (t1 - t0) * 1000}))
"""


def cold_start(url: str, device_token: str) -> tuple[float, float, float]:
    env = {**os.environ, "DATABASE_URL": url, "POWERTOOLS_LOG_LEVEL": "WARNING"}
    event = str(ROOT / "events" / "device_list_pending.json")
    done = subprocess.run(
        [sys.executable, "-c", COLD, event, device_token], env=env, capture_output=True, text=True, check=True
    )
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    bare = (time.perf_counter() - t0) * 1000
    return measured["first"], measured["import"], bare


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
    parser.add_argument("--out", help="also write the table here (e.g. bench/RESULTS.md)")
    args = parser.parse_args(argv)
    devices = 200 if args.smoke else args.devices
    server_url = devdb.database_url()
    with psycopg.connect(server_url) as conn:
        server_version = conn.info.server_version
        host = conn.info.host
    transport = "a unix socket" if host.startswith("/") else f"TCP to {host}"
    started = time.perf_counter()
    with open(os.devnull, "w") as devnull, redirect_stdout(devnull):  # the handlers' EMF metrics and logs
        rows = figures(server_url, devices, args.smoke)
    lines = [
        "| figure | measured | baseline (same run) | ratio | goal |",
        "|---|---|---|---|---|",
        *(f.row() for f in rows),
    ]
    table = "\n".join(lines)
    print(table)
    print(f"\n({time.perf_counter() - started:.0f} s)")
    if args.out:
        header = (
            f"# Benchmark results\n\n{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, on {machine()}, "
            f"PostgreSQL {server_version // 10000}.{server_version % 100} over {transport}, "
            f"{devices:,} devices in the big tenant.\n\n"
            "Run with `make bench`. Latencies are in-process handler calls (what a warm Lambda container\n"
            "spends) against the same PostgreSQL round trip they are built on.\n\n"
        )
        with open(args.out, "w") as out:
            out.write(header + table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
