"""Devices finishing one job together, against as many each finishing a job of its own: the same
concurrency on this machine, so what differs is contention on the job's rows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.dataset import BIG, Dataset, device_id, token
from bench.harness import Figure, ms, percentile
from bench.instruments import all_at_once
from jobs_core.domain import executions, jobs_create
from jobs_core.domain.job_settings import JobCreate
from jobs_core.domain.models import ExecutionUpdate
from jobs_core.store.db import Database


def run(data: Dataset) -> list[Figure]:
    shown = data.admin.execute("SHOW max_connections").fetchone()
    finishers = data.take(min(100, (int(shown[0]) if shown else 100) - 15))  # a container, a connection
    for i in finishers:
        executions.update(data.db, token(BIG, i), "big", ExecutionUpdate(status="IN_PROGRESS"))
        own = f"own-{i}"
        jobs_create.create(
            data.db, BIG, "bench", JobCreate(job_id=own, document_type="x", target_device_id=device_id(i))
        )
        executions.update(data.db, token(BIG, i), own, ExecutionUpdate(status="IN_PROGRESS"))
    separate = together_ms(
        data.url,
        len(finishers),
        lambda d, k: executions.update(
            d, token(BIG, finishers[k]), f"own-{finishers[k]}", ExecutionUpdate(status="SUCCEEDED")
        ),
    )
    together = together_ms(
        data.url,
        len(finishers),
        lambda d, k: executions.update(d, token(BIG, finishers[k]), "big", ExecutionUpdate(status="SUCCEEDED")),
    )
    n = len(finishers)
    return [
        Figure(
            f"finish: {n} devices of one {data.devices:,}-device job at once",
            ms(together),
            f"{n} devices each finishing its own job at once: {ms(separate)}",
            percentile(together, 99) / percentile(separate, 99),
            "no hot row: about 1 (p99)",
        )
    ]


def together_ms(url: str, n: int, work: Callable[[Database, int], Any]) -> list[float]:
    outcomes = all_at_once(url, n, work)
    failed = [o.result for o in outcomes if isinstance(o.result, Exception)]
    assert not failed, failed[:3]
    return [o.ms for o in outcomes]
