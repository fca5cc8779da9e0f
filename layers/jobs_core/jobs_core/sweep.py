"""The scheduled sweep: time out the active executions that are due (their job expired), then
complete the jobs they finished.

Bounded batches, each its own transaction; idempotent (a second run finds nothing to do); and
overlapping runs never work at once: a run that finds the advisory lock taken stops at once.
What it reads follows what is due: the executions it may time out are found by an index over
the active ones' sweep_at, so a sweep with nothing due reads nothing.

No value of one row stops the schedule for the rest: a batch that fails is rolled back and split
in halves, each its own transaction, until the rows that fail are alone; those are logged,
counted (`failed`) and left for the next run, and every other row is timed out.
"""

from __future__ import annotations

from datetime import datetime

import psycopg
from psycopg import sql
from psycopg.rows import DictRow
from pydantic import BaseModel

from jobs_core.db import Connection, Database, sql_list
from jobs_core.observability import logger
from jobs_core.settings import settings
from jobs_core.statemachine import Actor, ExecutionStatus, sources

SWEEP_LOCK = 0x10B55EE9  # pg_try_advisory_xact_lock key: one sweep transaction at a time

# The sweep's transition, as the state machine's table has it: active executions that are due
# become TIMED_OUT. %(now)s is the time the sweep runs as (now(), unless simulated).
EXPIRABLE = sql_list(sources(ExecutionStatus.TIMED_OUT, Actor.SWEEP))
DUE = sql.SQL("""
SELECT e.ctid
FROM job_executions e
WHERE e.sweep_at <= coalesce(%(now)s, now())
  AND e.status IN ({expirable})
  AND e.sweep_at IS NOT NULL
  AND NOT (e.ctid = ANY (%(skip)s::tid[]))
ORDER BY e.sweep_at
LIMIT %(batch_size)s
FOR UPDATE OF e SKIP LOCKED  -- a device mid-update keeps its row; a later batch takes it
""").format(expirable=EXPIRABLE)

# The normal path: find a batch, lock it and time it out in one statement. The rows are locked by
# this transaction, so their ctids hold until it ends: a TID scan.
TIME_OUT_BATCH = sql.SQL("""
WITH batch AS ({due}), timed_out AS (
    UPDATE job_executions e
    SET status = {timed_out}, execution_number = e.execution_number + 1,
        last_updated_at = coalesce(%(now)s, now()), sweep_at = NULL
    WHERE e.ctid = ANY (ARRAY(SELECT ctid FROM batch))
    RETURNING e.tenant_id, e.job_id
)
SELECT tenant_id, job_id, count(*) AS timed_out
FROM timed_out
GROUP BY tenant_id, job_id
""").format(due=DUE, timed_out=sql.Literal(str(ExecutionStatus.TIMED_OUT)))

# When a batch failed: the same rows by ctid, re-checked (they are no longer locked), in parts.
TIME_OUT = sql.SQL("""
WITH timed_out AS (
    UPDATE job_executions e
    SET status = {timed_out}, execution_number = e.execution_number + 1,
        last_updated_at = coalesce(%(now)s, now()), sweep_at = NULL
    WHERE e.ctid = ANY (%(ctids)s::tid[])
      AND e.status IN ({expirable})
      AND e.sweep_at <= coalesce(%(now)s, now())
    RETURNING e.tenant_id, e.job_id
)
SELECT tenant_id, job_id, count(*) AS timed_out
FROM timed_out
GROUP BY tenant_id, job_id
""").format(timed_out=sql.Literal(str(ExecutionStatus.TIMED_OUT)), expirable=EXPIRABLE)

# The same rule as a device's last update (sql/jobs.sql).
COMPLETE_JOBS = "SELECT complete_finished_jobs(%(tenant_ids)s, %(job_ids)s) AS completed"

DESCRIBE_ROW = "SELECT tenant_id, job_id, device_id FROM job_executions WHERE ctid = %(ctid)s::tid"


class SweepResult(BaseModel):
    timed_out: int = 0
    completed: int = 0
    failed: int = 0  # rows whose time-out failed, left for the next run
    batches: int = 0
    skipped: bool = False  # another sweep held the lock


class _Busy(Exception):
    """Another sweep holds the lock."""


def sweep(
    db: Database, *, batch_size: int | None = None, max_batches: int | None = None, now: datetime | None = None
) -> SweepResult:
    config = settings()
    batch_size = batch_size or config.sweep_batch_size
    max_batches = max_batches or config.sweep_max_batches
    result = SweepResult()
    failed: list[str] = []  # ctids of rows that failed in this run: later batches pass them by
    try:
        while result.batches < max_batches:
            found = _batch(db, result, failed, batch_size, now)
            result.batches += 1
            if found < batch_size:
                break
    except _Busy:
        result.skipped = True
    result.failed = len(failed)
    return result


def _locked(db: Database) -> Connection:
    conn = db.connection()
    locked = conn.execute("SELECT pg_try_advisory_xact_lock(%s) AS ok", [SWEEP_LOCK]).fetchone()
    if not (locked and locked["ok"]):
        raise _Busy
    return conn


def _batch(db: Database, result: SweepResult, failed: list[str], batch_size: int, now: datetime | None) -> int:
    """Time out a batch of due rows in one statement; returns how many it found. If that fails
    on a value of some row, the batch's rows are timed out in parts around the failing ones."""
    params = {"now": now, "batch_size": batch_size, "skip": failed}
    try:
        with db.transaction(role=settings().sweeper_role, pipeline=False):
            conn = _locked(db)
            done = _completed(conn, conn.execute(TIME_OUT_BATCH, params).fetchall())
    except psycopg.Error as exc:
        if not _isolable(exc):
            raise
        with db.transaction(role=settings().sweeper_role, pipeline=False):
            ctids = [row["ctid"] for row in _locked(db).execute(DUE, params)]
        _retry(db, result, failed, ctids, now)
        return len(ctids)
    result.timed_out, result.completed = result.timed_out + done[0], result.completed + done[1]
    return done[0]


def _completed(conn: Connection, jobs: list[DictRow]) -> tuple[int, int]:
    """Complete the jobs whose executions were timed out (jobs: tenant_id, job_id, timed_out):
    (timed out, completed)."""
    if not jobs:
        return 0, 0
    touched = {"tenant_ids": [row["tenant_id"] for row in jobs], "job_ids": [row["job_id"] for row in jobs]}
    completed = conn.execute(COMPLETE_JOBS, touched).fetchone()
    return sum(row["timed_out"] for row in jobs), completed["completed"] if completed else 0


def _time_out(conn: Connection, ctids: list[str], now: datetime | None) -> tuple[int, int]:
    """Time out these rows (if still due) and complete the jobs they finished."""
    return _completed(conn, conn.execute(TIME_OUT, {"ctids": ctids, "now": now}).fetchall())


def _retry(db: Database, result: SweepResult, failed: list[str], ctids: list[str], now: datetime | None) -> None:
    """A failed batch in halves, each its own transaction, until the failing rows are alone."""
    if len(ctids) == 1:
        failed.append(ctids[0])
        with db.transaction(role=settings().sweeper_role, pipeline=False) as conn:
            row = conn.execute(DESCRIBE_ROW, {"ctid": ctids[0]}).fetchone()
        logger.error("sweep: an execution could not be timed out; left for the next run", extra=dict(row or {}))
        return
    half = len(ctids) // 2
    for part in (ctids[:half], ctids[half:]):
        try:
            with db.transaction(role=settings().sweeper_role, pipeline=False):
                done = _time_out(_locked(db), part, now)
        except psycopg.Error as exc:
            if not _isolable(exc):
                raise
            _retry(db, result, failed, part, now)
        else:
            result.timed_out, result.completed = result.timed_out + done[0], result.completed + done[1]


def _isolable(exc: psycopg.Error) -> bool:
    """A fault of the data (a value out of range, a constraint), not of the database's reach
    (which db.py turns into DatabaseUnavailable before it gets here)."""
    return not isinstance(exc, psycopg.OperationalError)
