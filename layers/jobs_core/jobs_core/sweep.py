"""The scheduled sweep: time out the executions of expired jobs, then complete the jobs they finished.

Bounded batches, each its own transaction; idempotent (a second run finds nothing to do); and
overlapping runs never work at once: a run that finds the advisory lock taken stops at once.
"""

from __future__ import annotations

from psycopg import sql
from pydantic import BaseModel

from jobs_core.db import Database, sql_list
from jobs_core.settings import settings
from jobs_core.statemachine import Actor, ExecutionStatus, sources

SWEEP_LOCK = 0x10B55EE9  # pg_try_advisory_xact_lock key: one sweep batch at a time

# The sweep's transition, as the state machine's table has it: active executions of expired jobs
# become TIMED_OUT.
TIME_OUT_BATCH = sql.SQL("""
WITH batch AS (
    SELECT e.ctid
    FROM jobs j
    JOIN job_executions e ON e.tenant_id = j.tenant_id AND e.job_id = j.job_id
    WHERE j.expires_at <= now()
      AND e.status IN ({expirable})
    LIMIT %(batch_size)s
    FOR UPDATE OF e SKIP LOCKED  -- a device mid-update keeps its row; a later batch takes it
), timed_out AS (
    -- the rows are locked by this transaction, so their ctids hold until it ends: a TID scan
    UPDATE job_executions e
    SET status = {timed_out}, execution_number = e.execution_number + 1, last_updated_at = now()
    WHERE e.ctid = ANY (ARRAY(SELECT ctid FROM batch))
    RETURNING e.tenant_id, e.job_id
)
SELECT tenant_id, job_id, count(*) AS timed_out
FROM timed_out
GROUP BY tenant_id, job_id
""").format(
    expirable=sql_list(sources(ExecutionStatus.TIMED_OUT, Actor.SWEEP)),
    timed_out=sql.Literal(str(ExecutionStatus.TIMED_OUT)),
)

# The same rule as a device's last update (sql/jobs.sql).
COMPLETE_JOBS = "SELECT complete_finished_jobs(%(tenant_ids)s, %(job_ids)s) AS completed"


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
                completed = conn.execute(COMPLETE_JOBS, touched).fetchone()
                result.completed += completed["completed"] if completed else 0
        result.batches += 1
        timed_out = sum(row["timed_out"] for row in jobs)
        result.timed_out += timed_out
        if timed_out < batch_size:
            break
    return result
