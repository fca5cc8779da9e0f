"""5. Creating a job for every device of the big tenant against a raw INSERT ... SELECT of as many
rows. Leaves jobs all-0... and raw-0... for the sweep figure."""

from __future__ import annotations

import statistics
import time

from bench.dataset import BIG, Dataset
from bench.harness import Figure
from jobs_core.domain import jobs_create
from jobs_core.domain.job_settings import JobCreate


def tries(data: Dataset) -> int:
    return 2 if data.quick else 4


def run(data: Dataset) -> list[Figure]:
    raw_times, ours_times = [], []
    for i in range(tries(data)):
        data.admin.execute(
            "INSERT INTO jobs (tenant_id, job_id, document_type) VALUES (%s, %s, 'raw')", [BIG, f"raw-{i}"]
        )
        t0 = time.perf_counter()
        data.admin.execute(
            "INSERT INTO job_executions (tenant_id, job_id, device_id)"
            " SELECT tenant_id, %s, device_id FROM device_state WHERE tenant_id = %s",
            [f"raw-{i}", BIG],
        )
        raw_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        created = jobs_create.create(
            data.db, BIG, "bench", JobCreate(job_id=f"all-{i}", document_type="x", target_all=True)
        )
        ours_times.append(time.perf_counter() - t0)
        assert created.execution_count == data.devices
    return [
        Figure(
            f"5. create a job for {data.devices:,} devices",
            f"{statistics.median(ours_times) * 1000:.0f} ms",
            f"raw INSERT ... SELECT: {statistics.median(raw_times) * 1000:.0f} ms",
            statistics.median(ours_times) / statistics.median(raw_times),
            "<= 1.3",
        )
    ]
