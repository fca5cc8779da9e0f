"""6. The sweep: time out whole expired jobs (all-i, made by the fan-out figure) against a raw UPDATE
of as many rows of another (raw-i), in alternating order; then device polls while one more sweep
runs, against polls without one."""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

from bench.dataset import BIG, SMALL, Dataset, token
from bench.figures.fan_out import tries
from bench.harness import Figure, ms, percentile, timed
from jobs_core.domain import executions
from jobs_core.domain.sweep import sweep
from jobs_core.store.db import Database


def run(data: Dataset) -> list[Figure]:
    admin = data.admin

    def expire(job_id: str) -> None:  # the job, and its executions' deadline as the fan-out copies it
        admin.execute(
            "WITH expired AS (UPDATE jobs SET expires_at = now() - interval '1 second'"
            "  WHERE tenant_id = %(t)s AND job_id = %(j)s RETURNING expires_at)"
            " UPDATE job_executions SET sweep_at = (SELECT expires_at FROM expired)"
            " WHERE tenant_id = %(t)s AND job_id = %(j)s",
            {"t": BIG, "j": job_id},
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
        swept = sweep(data.db, max_batches=10_000)
        elapsed = time.perf_counter() - t0
        assert swept.timed_out >= data.devices, swept
        return elapsed, swept

    raw_times, our_times = [], []
    made = tries(data)
    for i in range(made - 1):
        expire(f"all-{i}")
        if i % 2:
            our_times.append(our_sweep()[0])
            raw_times.append(raw_update(f"raw-{i}"))
        else:
            raw_times.append(raw_update(f"raw-{i}"))
            our_times.append(our_sweep()[0])
    raw, ours = statistics.median(raw_times), statistics.median(our_times)

    poller = Database(lambda refresh: data.url)
    me = token(SMALL, data.take(1, SMALL)[0])

    def poll() -> None:
        executions.pending(poller, me)

    quiet = timed(poll, data.reps // 2)
    during: list[float] = []
    done = threading.Event()

    def keep_polling() -> None:
        while not done.is_set():
            t0 = time.perf_counter()
            poll()
            during.append((time.perf_counter() - t0) * 1000)

    expire(f"all-{made - 1}")
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
            f"raw UPDATE of {data.devices:,}: {raw * 1000:.0f} ms",
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
