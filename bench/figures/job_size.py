"""3. Finishing an execution of the big job against one of a 10-device job: same work, other sizes.
The 10-device jobs are the small tenant's (small-0...), finished by its devices in turn."""

from __future__ import annotations

import time

from bench.dataset import BIG, SMALL, SMALL_DEVICES, Dataset, token
from bench.harness import Figure, ms, p50_ratio
from jobs_core.domain import executions, jobs_create
from jobs_core.domain.job_settings import JobCreate
from jobs_core.domain.models import ExecutionUpdate


def run(data: Dataset) -> list[Figure]:
    mine = data.take(min(data.reps // 5, 200))
    n = len(mine)
    for k in range(n // SMALL_DEVICES + 1):
        jobs_create.create(data.db, SMALL, "bench", JobCreate(job_id=f"small-{k}", document_type="x", target_all=True))
    big_finish, small_finish = [], []
    for i, device in enumerate(mine):
        big_token = token(BIG, device)
        executions.update(data.db, big_token, "big", ExecutionUpdate(status="IN_PROGRESS"))
        t0 = time.perf_counter()
        executions.update(data.db, big_token, "big", ExecutionUpdate(status="SUCCEEDED"))
        big_finish.append((time.perf_counter() - t0) * 1000)
        small_token, small_job = token(SMALL, i % SMALL_DEVICES), f"small-{i // SMALL_DEVICES}"
        executions.update(data.db, small_token, small_job, ExecutionUpdate(status="IN_PROGRESS"))
        t0 = time.perf_counter()
        executions.update(data.db, small_token, small_job, ExecutionUpdate(status="SUCCEEDED"))
        small_finish.append((time.perf_counter() - t0) * 1000)
    return [
        Figure(
            f"3. finish an execution of a {data.devices:,}-device job",
            ms(big_finish),
            f"of a 10-device job: {ms(small_finish)}",
            p50_ratio(big_finish, small_finish),
            "<= 1.2",
        )
    ]
