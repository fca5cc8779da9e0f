"""16. Load through a transaction pooler: 200 simulated containers (each its own client
connection, as a warm Lambda container holds one), half in each of two tenants, doing the device
mix (poll, claim, progress, finish, poll again) through PgBouncer in transaction mode with at most
10 server connections, against the same containers connected straight to the server, in turn.
Counts errors and rows of another tenant (every job id a device is shown must be one of its own
tenant's). The containers run as threads in 4 processes; the layer is called in-process."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from contextlib import redirect_stdout
from typing import Any

import psutil

from bench.dataset import BIG, Dataset, device_id, new_group, register_fleet, token
from bench.harness import Figure
from bench.instruments import process_cpu_s
from jobs_core.domain import executions, jobs_create
from jobs_core.domain.job_settings import JobCreate
from jobs_core.domain.models import ExecutionUpdate
from jobs_core.store.db import Database
from jobs_local.pooler import pooled

CONTAINERS = 200
SERVER_CONNECTIONS = 10
PROCESSES = 4
JOBS_PER_DEVICE = 40
OTHER = "load-other"
STEPS = (
    ExecutionUpdate(status="IN_PROGRESS"),
    ExecutionUpdate(status="IN_PROGRESS", status_details={"p": 50}),
    ExecutionUpdate(status="SUCCEEDED"),
)


def _process(url: str, work: list[tuple[str, frozenset[str]]], seconds: float, start: Any, out: Any) -> None:
    """Containers as threads, each with its own connection; reports (ops, errors, foreign rows)."""
    totals = [[0, 0, 0] for _ in work]

    def container(i: int) -> None:
        me, own = work[i]
        db = Database(lambda refresh: url)
        executions.pending(db, me)  # connected, and its server connection's plans cached, before the start
        start.wait()
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            try:
                pending = executions.pending(db, me).jobs
                totals[i][0] += 1
                totals[i][2] += sum(job.job_id not in own for job in pending)
                if pending:
                    for step in STEPS:
                        executions.update(db, me, pending[0].job_id, step)
                        totals[i][0] += 1
            except Exception:
                totals[i][1] += 1
        db.close()

    with open(os.devnull, "w") as devnull, redirect_stdout(devnull):  # the layer's metrics
        threads = [threading.Thread(target=container, args=(i,)) for i in range(len(work))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    out.put(tuple(sum(column) for column in zip(*totals, strict=True)))


def _load(url: str, work: list[tuple[str, frozenset[str]]], seconds: float) -> tuple[float, int, int]:
    spawn = multiprocessing.get_context("spawn")
    start, out = spawn.Event(), spawn.Queue()
    shares = [work[k::PROCESSES] for k in range(PROCESSES)]
    procs = [spawn.Process(target=_process, args=(url, share, seconds, start, out)) for share in shares]
    for proc in procs:
        proc.start()
    time.sleep(3.0)  # every container connected
    start.set()
    reports = [out.get(timeout=300) for _ in procs]
    for proc in procs:
        proc.join()
    ops, errors, foreign = (sum(column) for column in zip(*reports, strict=True))
    return ops / seconds, errors, foreign


def _fleet(data: Dataset, name: str, n: int, other: list[int]) -> list[tuple[str, frozenset[str]]]:
    """n containers of their own, half in each tenant, each device with JOBS_PER_DEVICE jobs
    queued (enough that no device runs out during a run: every run does the same work)."""
    queued = 4 if data.quick else JOBS_PER_DEVICE
    mine, theirs = data.take(n - n // 2), [other.pop() for _ in range(n // 2)]
    groups = {BIG: [device_id(i) for i in mine], OTHER: [device_id(i) for i in theirs]}
    for tenant, members in groups.items():
        new_group(data.admin, tenant, name)
        data.admin.execute(
            "INSERT INTO device_group_members (tenant_id, group_id, device_id) SELECT %s, %s, unnest(%s::text[])",
            [tenant, name, members],
        )
        for k in range(queued):
            load = JobCreate(job_id=f"{name}-{k}", document_type="x", target_group_id=name)
            jobs_create.create(data.db, tenant, "bench", load)
    listed = "SELECT job_id FROM jobs WHERE tenant_id = %s"
    own = {tenant: frozenset(row[0] for row in data.admin.execute(listed, [tenant])) for tenant in groups}
    return [(token(BIG, i), own[BIG]) for i in mine] + [(token(OTHER, i), own[OTHER]) for i in theirs]


def run(data: Dataset) -> list[Figure]:
    seconds = 1.0 if data.quick else 4.0
    rounds = 1 if data.quick else 2
    limit = int(data.admin.execute("SHOW max_connections").fetchone()[0])  # type: ignore[index]
    direct_n = min(CONTAINERS, limit - 20)  # room for the server's other connections
    capped = direct_n < CONTAINERS
    other = list(range(2 * rounds * direct_n + CONTAINERS))
    register_fleet(data.admin, OTHER, len(other))
    # A fleet of its own for each run (no device runs out of work), all grouped before any run
    # starts (a job's fan-out reads the groups).
    fleets = [
        (_fleet(data, f"load-direct-{r}", direct_n, other), _fleet(data, f"load-pooled-{r}", direct_n, other))
        for r in range(rounds)
    ]
    full_work = _fleet(data, "load-full", CONTAINERS, other) if capped else []
    data.admin.execute("VACUUM ANALYZE job_executions")
    with pooled(data.url, pool_size=SERVER_CONNECTIONS, max_clients=CONTAINERS + 20) as url:
        pooler = next(child.pid for child in psutil.Process().children() if child.name() == "pgbouncer")
        runs, pooler_cpu = [], []
        for r, (direct_work, pooled_work) in enumerate(fleets):  # in turn, each first every other round
            before = process_cpu_s(pooler)
            if r % 2:
                through = _load(url, pooled_work, seconds)
                runs.append((_load(data.url, direct_work, seconds), through))
            else:
                runs.append((_load(data.url, direct_work, seconds), _load(url, pooled_work, seconds)))
            after = process_cpu_s(pooler)
            pooler_cpu.append(after - before if after is not None and before is not None else None)
        full, errors, foreign = _load(url, full_work, seconds) if capped else (0.0, 0, 0)
    # in turn, the best of each: this machine's noise is one-sided (other work only slows a run)
    direct, same = max(run[0][0] for run in runs), max(run[1][0] for run in runs)
    # PgBouncer runs on this machine's cores too (RDS Proxy does not): its CPU per operation
    best = max(range(rounds), key=lambda r: runs[r][1][0])
    cpu = pooler_cpu[best]
    pooler_ms = f"; PgBouncer's CPU {1000 * cpu / (same * seconds):.2f} ms per operation" if cpu is not None else ""
    direct_errors, direct_foreign = sum(run[0][1] for run in runs), sum(run[0][2] for run in runs)
    same_errors, same_foreign = sum(run[1][1] for run in runs), sum(run[1][2] for run in runs)
    return [
        Figure(
            f"16. device operations per second, {direct_n} containers through PgBouncer"
            f" (transaction mode, {SERVER_CONNECTIONS} server connections), best of {rounds} in turn",
            f"{same:,.0f} ops/s; {same_errors} errors, {same_foreign} rows of another tenant{pooler_ms}"
            + (f"; {CONTAINERS} containers: {full:,.0f} ops/s, {errors} errors, {foreign} rows" if capped else ""),
            f"as many containers connected directly: {direct:,.0f} ops/s, {direct_errors} errors,"
            f" {direct_foreign} rows" + (f" (max_connections {limit} here)" if capped else ""),
            same / direct if direct else None,
            ">= 0.8",
        )
    ]
