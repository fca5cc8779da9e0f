"""The scheduled sweep: time out the executions of expired jobs, then complete the jobs they finished.

Bounded batches, each its own transaction; idempotent (a second run finds nothing to do); and
overlapping runs never work at once: a run that finds the advisory lock taken stops at once.
"""

from __future__ import annotations

from pydantic import BaseModel

from jobs_core.db import Database
from jobs_core.settings import settings

SWEEP_LOCK = 0x10B55EE9  # pg_try_advisory_xact_lock key: one sweep batch at a time

TIME_OUT_BATCH = """
WITH batch AS (
    SELECT e.ctid
    FROM jobs j
    JOIN job_executions e ON e.tenant_id = j.tenant_id AND e.job_id = j.job_id
    WHERE j.expires_at <= now()
      AND e.status IN ('QUEUED', 'IN_PROGRESS')
    LIMIT %(batch_size)s
    FOR UPDATE OF e SKIP LOCKED  -- a device mid-update keeps its row; a later batch takes it
), timed_out AS (
    -- the rows are locked by this transaction, so their ctids hold until it ends: a TID scan
    UPDATE job_executions e
    SET status = 'TIMED_OUT', execution_number = e.execution_number + 1, last_updated_at = now()
    WHERE e.ctid = ANY (ARRAY(SELECT ctid FROM batch))
    RETURNING e.tenant_id, e.job_id
)
SELECT tenant_id, job_id, count(*) AS timed_out
FROM timed_out
GROUP BY tenant_id, job_id
"""

# The same rule as a device's last update: lock the job rows, then read their counts.
LOCK_JOBS = """
SELECT 1 FROM jobs j
WHERE (j.tenant_id, j.job_id) IN (SELECT * FROM unnest(%(tenant_ids)s::text[], %(job_ids)s::text[]))
  AND j.status = 'IN_PROGRESS'
ORDER BY j.tenant_id, j.job_id
FOR UPDATE OF j
"""

COMPLETE_JOBS = """
UPDATE jobs j
SET status = 'COMPLETED', updated_at = now()
WHERE (j.tenant_id, j.job_id) IN (SELECT * FROM unnest(%(tenant_ids)s::text[], %(job_ids)s::text[]))
  AND j.status = 'IN_PROGRESS'  -- a CANCELED job is never completed
  AND NOT EXISTS (
      SELECT 1 FROM job_execution_counts c
      WHERE c.tenant_id = j.tenant_id AND c.job_id = j.job_id AND c.queued + c.in_progress > 0)
"""


class SweepResult(BaseModel):
    timed_out: int = 0
    completed: int = 0
    batches: int = 0
    skipped: bool = False  # another sweep held the lock


def sweep(db: Database, *, batch_size: int | None = None, max_batches: int | None = None) -> SweepResult:
    config = settings()
    batch_size = batch_size or config.sweep_batch_size
    max_batches = max_batches or config.sweep_max_batches
    result = SweepResult()
    while result.batches < max_batches:
        with db.transaction(role=config.sweeper_role, pipeline=False) as conn:
            locked = conn.execute("SELECT pg_try_advisory_xact_lock(%s) AS ok", [SWEEP_LOCK]).fetchone()
            if not (locked and locked["ok"]):
                result.skipped = True
                break
            jobs = conn.execute(TIME_OUT_BATCH, {"batch_size": batch_size}).fetchall()
            if jobs:
                touched = {
                    "tenant_ids": [row["tenant_id"] for row in jobs],
                    "job_ids": [row["job_id"] for row in jobs],
                }
                conn.execute(LOCK_JOBS, touched)
                result.completed += conn.execute(COMPLETE_JOBS, touched).rowcount
        result.batches += 1
        timed_out = sum(row["timed_out"] for row in jobs)
        result.timed_out += timed_out
        if timed_out < batch_size:
            break
    return result
