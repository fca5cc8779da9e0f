"""10. Deep pages of the job list: a tenant with 1.2 million jobs, a page of 200 at offset
1,000,000 and the same page by cursor, against the first page, same data, same run."""

from __future__ import annotations

import base64
import json

from bench.dataset import Dataset
from bench.harness import Figure, ms, p50_ratio, timed
from jobs_core.domain import jobs_read

DEEP = "fleet-deep"


def run(data: Dataset) -> list[Figure]:
    total, depth = (12_000, 10_000) if data.quick else (1_200_000, 1_000_000)
    data.admin.execute(
        "INSERT INTO jobs (tenant_id, job_id, document_type, created_at)"
        " SELECT %(t)s, 'deep-' || lpad(i::text, 8, '0'), 'x', timestamptz '2026-01-01' + i * interval '1 second'"
        " FROM generate_series(1, %(n)s) AS i",
        {"t": DEEP, "n": total},
    )
    data.admin.execute("VACUUM ANALYZE jobs")
    # the cursor of the job just before the deep page: the newest is deep-<total>
    before = total - depth + 1
    row = data.admin.execute(
        "SELECT created_at FROM jobs WHERE tenant_id = %s AND job_id = %s", [DEEP, f"deep-{before:08d}"]
    ).fetchone()
    assert row is not None
    position = json.dumps([row[0].isoformat(), f"deep-{before:08d}"])
    cursor = base64.urlsafe_b64encode(position.encode()).decode().rstrip("=")
    db, reps = data.db, max(5, data.reps // 100)

    first = timed(lambda: jobs_read.list_jobs(db, DEEP, None, 200, 0), reps, warmup=3)
    by_offset = timed(lambda: jobs_read.list_jobs(db, DEEP, None, 200, depth), reps, warmup=3)
    by_cursor = timed(lambda: jobs_read.list_jobs(db, DEEP, None, 200, 0, cursor), reps, warmup=3)
    assert [j.job_id for j in jobs_read.list_jobs(db, DEEP, None, 200, depth).jobs] == [
        j.job_id for j in jobs_read.list_jobs(db, DEEP, None, 200, 0, cursor).jobs
    ]
    return [
        Figure(
            f"10. list 200 jobs at offset {depth:,} of {total:,}",
            ms(by_offset),
            f"offset 0: {ms(first)}",
            p50_ratio(by_offset, first),
            "< statement timeout (5 s)",
        ),
        Figure(
            f"10. the same page by cursor ({depth:,} deep)",
            ms(by_cursor),
            f"offset 0: {ms(first)}",
            p50_ratio(by_cursor, first),
            "about 1",
        ),
    ]
