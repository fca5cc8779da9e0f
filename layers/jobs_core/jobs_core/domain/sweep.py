"""The scheduled sweep: time out the active executions that are due (their job expired, their
in-progress or step timeout passed), abort or complete the jobs that makes so, then drive the
rollouts (rollouts.py: start scheduled jobs, release executions at their job's rate, end jobs at
their end_time, end the executions of jobs that stopped).

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
from typing import NamedTuple

import psycopg
from psycopg import sql
from psycopg.rows import DictRow
from pydantic import BaseModel, Field

from jobs_core.domain import notifications
from jobs_core.domain.rollouts import TickResult, tick_batch
from jobs_core.domain.statemachine import Actor, ExecutionStatus, retry_sources, retry_target, sources
from jobs_core.observability import logger
from jobs_core.settings import settings
from jobs_core.store.db import Connection, Database, sql_list

SWEEP_LOCK = 0x10B55EE9  # pg_try_advisory_xact_lock key: one sweep transaction at a time

# The sweep's transitions, as the state machine's table has them: an active execution that is due
# becomes TIMED_OUT; one whose in-progress or step timeout passed (its job still running) and that
# has a retry left ends its attempt TIMED_OUT (kept in job_execution_attempts) and is QUEUED again
# as the next attempt. %(now)s is the time the sweep runs as (now(), unless simulated).
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
# When a batch failed: the same rows by ctid, re-checked (they are no longer locked), in parts.
BY_CTIDS = sql.SQL("""
SELECT e.ctid
FROM job_executions e
WHERE e.ctid = ANY (%(ctids)s::tid[])
  AND e.status IN ({expirable})
  AND e.sweep_at <= coalesce(%(now)s, now())
FOR UPDATE OF e
""").format(expirable=EXPIRABLE)

# Time out (or retry) the rows `batch` selects, in one statement. The rows are locked by this
# transaction, so their ctids hold until it ends: a TID scan. Whether a row may be retried is read
# from its job, once per batch, only for rows whose own timeout passed (an expired job's rows are
# never retried).
TIME_OUT_ROWS = """
WITH batch AS ({batch}), due AS (
    SELECT e.ctid, e.tenant_id, e.job_id, e.device_id, e.attempt, e.started_at, e.status_details,
           coalesce(e.timeout_at <= coalesce(%(now)s, now()), false) AND e.status = ANY (%(retry_sources)s)
               AS may_retry,
           e.retried_failed, e.retried_timed_out
    FROM job_executions e
    WHERE e.ctid = ANY (ARRAY(SELECT ctid FROM batch))
), rules AS (  -- each job's retry rule, read once per batch, for the jobs whose rows may retry
    SELECT j.tenant_id, j.job_id, j.expires_at, j.retries_timed_out, j.retries_shared
    FROM jobs j
    WHERE (j.tenant_id, j.job_id) IN (SELECT DISTINCT tenant_id, job_id FROM due WHERE may_retry)
), decided AS (
    SELECT d.*, r.expires_at,
           coalesce(d.may_retry
                    AND (r.expires_at IS NULL OR r.expires_at > coalesce(%(now)s, now()))
                    AND CASE WHEN r.retries_shared THEN d.retried_failed + d.retried_timed_out
                             ELSE d.retried_timed_out END < r.retries_timed_out, false) AS retry
    FROM due d
    LEFT JOIN rules r ON r.tenant_id = d.tenant_id AND r.job_id = d.job_id
), changed AS (
    UPDATE job_executions e
    SET status = CASE WHEN d.retry THEN %(requeued)s ELSE %(timed_out)s END,
        status_details = CASE WHEN d.retry THEN NULL ELSE e.status_details END,
        execution_number = e.execution_number + 1,
        attempt = e.attempt + d.retry::integer,
        retried_timed_out = e.retried_timed_out + d.retry::integer,
        last_updated_at = coalesce(%(now)s, now()),
        started_at = CASE WHEN d.retry THEN NULL ELSE e.started_at END,
        step_timeout_at = NULL, timeout_at = NULL,
        sweep_at = CASE WHEN d.retry THEN d.expires_at END
    FROM decided d
    WHERE e.ctid = d.ctid
    RETURNING e.tenant_id, e.job_id, d.retry
), ended_attempts AS (
    INSERT INTO job_execution_attempts
        (tenant_id, job_id, device_id, attempt, status, status_details, started_at, finished_at)
    SELECT d.tenant_id, d.job_id, d.device_id, d.attempt, %(timed_out)s, d.status_details, d.started_at,
           coalesce(%(now)s, now())
    FROM decided d
    WHERE d.retry
)
SELECT tenant_id, job_id, count(*) FILTER (WHERE NOT retry) AS timed_out, count(*) FILTER (WHERE retry) AS retried
FROM changed
GROUP BY tenant_id, job_id
"""
TIME_OUT_BATCH = sql.SQL(TIME_OUT_ROWS).format(batch=DUE)
TIME_OUT = sql.SQL(TIME_OUT_ROWS).format(batch=BY_CTIDS)
TRANSITIONS = {
    "timed_out": str(ExecutionStatus.TIMED_OUT),
    "requeued": retry_target(ExecutionStatus.TIMED_OUT, Actor.SWEEP),
    "retry_sources": retry_sources(ExecutionStatus.TIMED_OUT, Actor.SWEEP),
}

# The same rules as a device's last update (sql/jobs.sql): time-outs may cross a job's abort rule,
# or finish the job.
ABORT_JOBS = "SELECT abort_crossed_jobs(%(tenant_ids)s, %(job_ids)s, coalesce(%(now)s, now())) AS aborted"
COMPLETE_JOBS = "SELECT complete_finished_jobs(%(tenant_ids)s, %(job_ids)s) AS completed"
ROLLOUT_JOBS_PER_BATCH = 1000

DESCRIBE_ROW = "SELECT tenant_id, job_id, device_id FROM job_executions WHERE ctid = %(ctid)s::tid"


class SweepResult(BaseModel):
    timed_out: int = 0
    retried: int = 0  # timed out with a retry left: QUEUED again as the next attempt
    completed: int = 0
    aborted: int = 0  # jobs whose abort rule the time-outs crossed
    failed: int = 0  # rows whose time-out failed, left for the next run
    batches: int = 0
    started: int = 0  # scheduled jobs that started
    released: int = 0  # executions released to their devices
    ended: int = 0  # jobs whose end_time passed
    stopped: int = 0  # executions ended because their job stopped (abort rule, end_time)
    skipped: bool = False  # another sweep held the lock
    # (tenant_id, job_id, released, rate in force) per job released for: for tests, not printed
    releases: list[tuple[str, str, int, int | None]] = Field(default_factory=list, exclude=True)


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
        _tick(db, result, batch_size, max_batches, now)
    except _Busy:
        result.skipped = True
    result.failed = len(failed)
    if result.timed_out or result.retried or result.released or result.stopped or result.started:
        notifications.wake()  # devices whose queue changed: tell them now, not at the push schedule
    return result


def _tick(db: Database, result: SweepResult, budget: int, max_batches: int, now: datetime | None) -> None:
    """The rollouts' part: batches of due jobs, each its own transaction, moving at most `budget`
    executions, until none is due."""
    tick = TickResult()
    for _ in range(max_batches):
        with db.transaction(role=settings().sweeper_role, pipeline=False):
            due = tick_batch(_locked(db), now, ROLLOUT_JOBS_PER_BATCH, budget, tick)
        if not due:
            break
    result.started += tick.started
    result.released += tick.released
    result.ended += tick.ended
    result.stopped += tick.stopped
    result.completed += tick.completed
    result.releases += tick.releases


def _locked(db: Database) -> Connection:
    conn = db.connection()
    locked = conn.execute("SELECT pg_try_advisory_xact_lock(%s) AS ok", [SWEEP_LOCK]).fetchone()
    if not (locked and locked["ok"]):
        raise _Busy
    return conn


def _batch(db: Database, result: SweepResult, failed: list[str], batch_size: int, now: datetime | None) -> int:
    """Time out a batch of due rows in one statement; returns how many it found. If that fails
    on a value of some row, the batch's rows are timed out in parts around the failing ones."""
    params = {"now": now, "batch_size": batch_size, "skip": failed, **TRANSITIONS}
    try:
        with db.transaction(role=settings().sweeper_role, pipeline=False):
            conn = _locked(db)
            done = _completed(conn, conn.execute(TIME_OUT_BATCH, params).fetchall(), now)
    except psycopg.Error as exc:
        if not _isolable(exc):
            raise
        with db.transaction(role=settings().sweeper_role, pipeline=False):
            ctids = [row["ctid"] for row in _locked(db).execute(DUE, params)]
        _retry(db, result, failed, ctids, now)
        return len(ctids)
    _add(result, done)
    return done.timed_out + done.retried


class _Done(NamedTuple):
    timed_out: int
    completed: int
    retried: int
    aborted: int


def _completed(conn: Connection, jobs: list[DictRow], now: datetime | None) -> _Done:
    """Abort, else complete, the jobs whose executions were timed out (jobs: tenant_id, job_id,
    timed_out, retried)."""
    if not jobs:
        return _Done(0, 0, 0, 0)
    touched = {"tenant_ids": [row["tenant_id"] for row in jobs], "job_ids": [row["job_id"] for row in jobs]}
    ended = [row for row in jobs if row["timed_out"]]
    aborted = (
        conn.execute(
            ABORT_JOBS,
            {"tenant_ids": [r["tenant_id"] for r in ended], "job_ids": [r["job_id"] for r in ended], "now": now},
        ).fetchone()
        if ended
        else None
    )
    completed = conn.execute(COMPLETE_JOBS, touched).fetchone()
    return _Done(
        sum(row["timed_out"] for row in jobs),
        completed["completed"] if completed else 0,
        sum(row["retried"] for row in jobs),
        aborted["aborted"] if aborted else 0,
    )


def _add(result: SweepResult, done: _Done) -> None:
    result.timed_out += done.timed_out
    result.completed += done.completed
    result.retried += done.retried
    result.aborted += done.aborted


def _time_out(conn: Connection, ctids: list[str], now: datetime | None) -> _Done:
    """Time out these rows (if still due) and abort or complete the jobs they finished."""
    return _completed(conn, conn.execute(TIME_OUT, {"ctids": ctids, "now": now, **TRANSITIONS}).fetchall(), now)


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
            _add(result, done)


def _isolable(exc: psycopg.Error) -> bool:
    """A fault of the data (a value out of range, a constraint), not of the database's reach
    (which store/db.py turns into DatabaseUnavailable before it gets here)."""
    return not isinstance(exc, psycopg.OperationalError)
