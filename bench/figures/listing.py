"""7. Listing 50 jobs of the big tenant's size against 50 jobs of 10 executions."""

from __future__ import annotations

from bench.dataset import BIG, SMALL, Dataset
from bench.harness import Figure, ms, p50_ratio, timed
from jobs_core.domain import jobs_create, jobs_read
from jobs_core.domain.job_settings import JobCreate


def run(data: Dataset) -> list[Figure]:
    db = data.db
    created = {j.job_id for j in jobs_read.list_jobs(db, BIG, None, 200, 0).jobs if j.total_executions == data.devices}
    for i in range(max(0, 50 - len(created))):
        jobs_create.create(db, BIG, "bench", JobCreate(job_id=f"list-{i}", document_type="x", target_all=True))
    for i in range(50):
        jobs_create.create(db, SMALL, "bench", JobCreate(job_id=f"list-{i}", document_type="x", target_all=True))
    page = jobs_read.list_jobs(db, BIG, None, 50, 0).jobs
    assert len(page) == 50 and all(j.total_executions == data.devices for j in page)
    big = timed(lambda: jobs_read.list_jobs(db, BIG, None, 50, 0), data.reps // 5)
    small = timed(lambda: jobs_read.list_jobs(db, SMALL, None, 50, 0), data.reps // 5)
    data.admin.execute("VACUUM ANALYZE")  # what autovacuum does after a few million new rows
    return [
        Figure(
            f"7. list 50 jobs of {data.devices:,} executions",
            ms(big),
            f"50 jobs of 10: {ms(small)}",
            p50_ratio(big, small),
            "<= 2",
        )
    ]
