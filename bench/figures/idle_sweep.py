"""11. A sweep with nothing due, with the big tenant's executions active (not yet expired):
what the schedule costs every minute when there is nothing to do, against a SELECT 1."""

from __future__ import annotations

from bench.dataset import Dataset
from bench.harness import Figure, ms, p50_ratio, timed
from jobs_core.domain.sweep import sweep
from jobs_core.store.db import Database


def run(data: Dataset) -> list[Figure]:
    active = data.admin.execute(
        "SELECT count(*) FROM job_executions WHERE status IN ('QUEUED', 'IN_PROGRESS')"
    ).fetchone()
    assert active is not None
    db = Database(lambda refresh: data.url)
    conn = db.connection()
    sweep(db, max_batches=10_000)  # whatever is due now, out of the way: from here on nothing is
    idle = timed(lambda: sweep(db), 50, warmup=5)
    select1 = timed(lambda: conn.execute("SELECT 1").fetchone(), 50, warmup=5)
    db.close()
    return [
        Figure(
            f"11. a sweep with nothing due, {active[0]:,} executions active",
            ms(idle),
            f"SELECT 1: {ms(select1)}",
            p50_ratio(idle, select1),
            "follows what is due, not what is active",
        )
    ]
