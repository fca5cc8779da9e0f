"""Rollouts, as the schedule drives them: start scheduled jobs, release held-back executions at the
job's rate, end jobs at their end_time, and end the executions of jobs that stopped early (their
abort rule, their end_time).

A tick reads the jobs that are due (an index over `next_tick_at`, so a tick with nothing due reads
nothing) in batches, decides for each what it may do (`plan`, plain Python: the rate rule lives
here once), then does it in one transaction per batch: the executions first (each job's next ones
by an index over what is left, so the cost follows what is released, never the job's size), then
the jobs' rows, the lock order every writer keeps. A batch moves at most `budget` executions.

The rate: executions are released at most `rate_per_minute` a minute. The rate's credit accrues
with time, at most one minute's worth (so one tick never releases more than the rate), and is
spent by each release; a late tick loses nothing it may have. With an exponential rate the rate
starts at the base and is multiplied by the factor (to at most the maximum) each time the
criterion's count (things notified, i.e. released, or things that succeeded) has grown by
`increase_every` since the last increase; a tick applies the increase before it releases.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb

from jobs_core.domain.statemachine import Actor, ExecutionStatus, JobStatus, job_sources, sources
from jobs_core.store.db import Connection, sql_list

MINUTE = timedelta(minutes=1)
U, Q, P = ExecutionStatus.UNRELEASED, ExecutionStatus.QUEUED, ExecutionStatus.IN_PROGRESS
R, X = ExecutionStatus.REJECTED, ExecutionStatus.CANCELED

# What each way of stopping ends, and as what (the state machine's SWEEP transitions): STOP_ROLLOUT
# what was not released, CANCEL also what was not started, FORCE_CANCEL also what runs.
ENDS: dict[str, list[tuple[ExecutionStatus, ExecutionStatus]]] = {
    "STOP_ROLLOUT": [(U, R)],
    "CANCEL": [(U, R), (Q, R)],
    "FORCE_CANCEL": [(U, R), (Q, R), (P, X)],
}

DUE = """
SELECT coalesce(%(now)s, now()) AS now, j.tenant_id, j.job_id, j.status, j.start_time, j.end_time, j.end_behavior,
       j.rollout, j.rate_per_minute,
       j.rate_increases, j.increase_baseline, j.released, j.released_until, j.stop_action, j.stop_reason,
       n.unreleased, n.queued, n.in_progress, n.succeeded
FROM jobs j
CROSS JOIN LATERAL (
    SELECT coalesce(sum(c.unreleased), 0)::bigint AS unreleased, coalesce(sum(c.queued), 0)::bigint AS queued,
           coalesce(sum(c.in_progress), 0)::bigint AS in_progress, coalesce(sum(c.succeeded), 0)::bigint AS succeeded
    FROM job_execution_counts c
    WHERE c.tenant_id = j.tenant_id AND c.job_id = j.job_id
) n
WHERE j.next_tick_at <= coalesce(%(now)s, now())
ORDER BY j.next_tick_at, j.tenant_id, j.job_id
LIMIT %(jobs)s
"""


def _move(source: ExecutionStatus, target: ExecutionStatus, *, ordered: bool) -> sql.Composed:
    """Move up to `take` executions of each job from source to target, in one statement; returns
    (tenant_id, job_id, moved). Each job's rows come from an index over its rows in `source`, and
    are then updated by the ctids they were locked at (a TID scan), so the cost follows what is
    moved, whatever the planner estimates. Releases pass over rows another transaction holds (SKIP
    LOCKED: only an operator's cancel would, which ends them anyway); ends wait for them."""
    assert source in sources(target, Actor.SWEEP), (source, target)
    released = target is Q
    return sql.SQL("""
WITH picked AS (
    SELECT r.ctid
    FROM unnest(%(tenant_ids)s::text[], %(job_ids)s::text[], %(takes)s::int[]) AS w(tenant_id, job_id, take)
    CROSS JOIN LATERAL (
        SELECT e.ctid FROM job_executions e
        WHERE e.tenant_id = w.tenant_id AND e.job_id = w.job_id AND e.status = {source}
        {order}
        LIMIT w.take
        FOR UPDATE {skip}
    ) r
), moved AS (
    UPDATE job_executions e
    SET status = {target}, last_updated_at = coalesce(%(now)s, now()), {changes}
    WHERE e.ctid = ANY (ARRAY(SELECT ctid FROM picked)) AND e.status IN ({sources})
    RETURNING e.tenant_id, e.job_id
)
SELECT tenant_id, job_id, count(*)::int AS moved FROM moved GROUP BY tenant_id, job_id
""").format(
        source=sql.Literal(str(source)),
        target=sql.Literal(str(target)),
        sources=sql_list([str(source)]),
        order=sql.SQL("ORDER BY e.device_id" if ordered else ""),
        skip=sql.SQL("SKIP LOCKED" if released else ""),
        # a release makes the execution visible (queued from now); an end is a change the device
        # sees: a new version, its job's reason (looked up by key in a JSON object, not joined),
        # and no deadline any more
        changes=sql.SQL(
            "queued_at = coalesce(%(now)s, now())"
            if released
            else "execution_number = e.execution_number + 1,"
            " status_details = jsonb_build_object('reason', %(reasons)s::jsonb ->> (e.tenant_id || ' ' || e.job_id)),"
            " timeout_at = NULL, step_timeout_at = NULL, sweep_at = NULL"
        ),
    )


RELEASE = _move(U, Q, ordered=True)
END_ROWS = {move: _move(*move, ordered=False) for move in dict.fromkeys(m for moves in ENDS.values() for m in moves)}

STARTABLE = job_sources(JobStatus.IN_PROGRESS, Actor.SWEEP)
ENDABLE = job_sources(JobStatus.CANCELED, Actor.SWEEP)
JOB_KEYS = "(j.tenant_id, j.job_id) IN (SELECT * FROM unnest(%(tenant_ids)s::text[], %(job_ids)s::text[]))"
START = sql.SQL(f"""
UPDATE jobs j SET status = {{started}}, updated_at = coalesce(%(now)s, now())
WHERE {JOB_KEYS} AND j.status IN ({{startable}})
""").format(started=sql.Literal(str(JobStatus.IN_PROGRESS)), startable=sql_list(STARTABLE))
# The end_time passed: CANCEL and FORCE_CANCEL cancel the job, STOP_ROLLOUT only stops the release.
END_CANCEL = sql.SQL(f"""
UPDATE jobs j
SET status = {{canceled}}, updated_at = coalesce(%(now)s, now()), stop_action = j.end_behavior,
    stop_reason = %(reason)s || j.end_behavior, stopped_at = coalesce(%(now)s, now())
WHERE {JOB_KEYS} AND j.status IN ({{endable}}) AND j.stop_action IS NULL
""").format(canceled=sql.Literal(str(JobStatus.CANCELED)), endable=sql_list(ENDABLE))
END_STOP = sql.SQL(f"""
UPDATE jobs j
SET updated_at = coalesce(%(now)s, now()), stop_action = j.end_behavior,
    stop_reason = %(reason)s || j.end_behavior, stopped_at = coalesce(%(now)s, now())
WHERE {JOB_KEYS} AND j.status IN ({{running}}) AND j.stop_action IS NULL
""").format(running=sql_list([str(JobStatus.IN_PROGRESS)]))
END_REASON = "end_time passed: "
# The rollout's new state. A stop this tick did not know of (an abort that committed meanwhile)
# keeps the tick time its device update set.
STATE = """
UPDATE jobs j
SET released = CASE WHEN w.released = 0 THEN j.released ELSE coalesce(j.released, 0) + w.released END,
    rate_per_minute = coalesce(w.rate, j.rate_per_minute), rate_increases = w.increases,
    increase_baseline = w.baseline,
    released_until = w.released_until, next_release_at = w.next_release_at,
    next_tick_at = CASE WHEN j.stop_action IS NOT NULL AND w.stop_action IS NULL THEN j.next_tick_at
                        ELSE w.next_tick_at END
FROM unnest(%(tenant_ids)s::text[], %(job_ids)s::text[], %(released)s::bigint[], %(rates)s::int[],
            %(increases)s::int[], %(baselines)s::bigint[], %(released_until)s::timestamptz[],
            %(next_release_at)s::timestamptz[], %(next_tick_at)s::timestamptz[], %(stop_actions)s::text[])
    AS w(tenant_id, job_id, released, rate, increases, baseline, released_until, next_release_at, next_tick_at,
         stop_action)
WHERE j.tenant_id = w.tenant_id AND j.job_id = w.job_id
"""
COMPLETE = "SELECT complete_finished_jobs(%(tenant_ids)s, %(job_ids)s) AS completed"


DEFAULT_MAXIMUM_PER_MINUTE = 1000  # an exponential rate's ceiling when the operator gives none (AWS's)


@dataclass
class Rule:
    """How fast a job's executions are released: NULL max_rate is not paced."""

    max_rate: int | None
    base_rate: int | None = None
    increment_factor: float | None = None
    increase_on: str | None = None  # "notified" | "succeeded"
    increase_every: int | None = None

    @classmethod
    def of(cls, rollout: dict[str, Any] | None) -> Rule:
        """The rule of a job's `rollout` setting, as the operator gave it (models.Rollout)."""
        if not rollout:
            return cls(None)
        rate = rollout.get("exponential_rate") or {}
        criteria = rate.get("rate_increase_criteria") or {}
        notified, succeeded = criteria.get("number_of_notified_things"), criteria.get("number_of_succeeded_things")
        return cls(
            rollout.get("maximum_per_minute") or DEFAULT_MAXIMUM_PER_MINUTE,
            rate.get("base_rate_per_minute"),
            rate.get("increment_factor"),
            "notified" if notified else "succeeded" if succeeded else None,
            notified or succeeded,
        )

    def rate(self, increases: int) -> int | None:
        """The rate in force after that many increases (exactly: the factor has one decimal)."""
        if self.max_rate is None:
            return None
        if self.base_rate is None or self.increment_factor is None:
            return self.max_rate
        exact = self.base_rate * Fraction(str(self.increment_factor)) ** increases
        return min(self.max_rate, math.floor(exact))


def credit(rate: int, released_until: datetime | None, now: datetime) -> tuple[int, datetime]:
    """How many the rate allows now, and since when its credit counts (at most a minute ago)."""
    since = now - MINUTE if released_until is None else max(released_until, now - MINUTE)
    elapsed_us = max(0, (now - since) // timedelta(microseconds=1))
    return min(rate, rate * elapsed_us // 60_000_000), since


def spent(since: datetime, rate: int, n: int) -> datetime:
    """Where the credit stands after n releases at `rate` (rounded down: never more than the rate)."""
    return since + timedelta(microseconds=n * 60_000_000 // rate)


@dataclass
class Plan:
    """What one tick does to one job."""

    tenant_id: str
    job_id: str
    start: bool = False
    end: str | None = None  # the end_behavior applied now
    stop_action: str | None = None  # in force after this tick
    stop_reason: str | None = None
    ends: list[tuple[ExecutionStatus, ExecutionStatus]] = field(default_factory=list)
    release: int = 0  # how many to release (not paced: all that is left, within the budget)
    rule: Rule = field(default_factory=lambda: Rule(None))
    rate: int | None = None
    increases: int = 0
    baseline: int = 0
    since: datetime | None = None  # the credit's start
    released_until: datetime | None = None
    unreleased: int = 0
    active: int = 0  # what an end may still have to end
    end_time: datetime | None = None
    start_time: datetime | None = None
    running: bool = False  # IN_PROGRESS after this tick's start and end


def plan(job: dict[str, Any], now: datetime) -> Plan:
    """Decide, from the job's row and counts as the tick read them, what the tick does to it."""
    p = Plan(job["tenant_id"], job["job_id"], start_time=job["start_time"], end_time=job["end_time"])
    status = JobStatus(job["status"])
    p.stop_action, p.stop_reason = job["stop_action"], job["stop_reason"]
    p.unreleased = job["unreleased"]
    if status is JobStatus.SCHEDULED and job["start_time"] is not None and job["start_time"] <= now:
        p.start, status = True, JobStatus.IN_PROGRESS
    if status is JobStatus.IN_PROGRESS and p.stop_action is None and p.end_time is not None and p.end_time <= now:
        p.end = p.stop_action = job["end_behavior"]
        p.stop_reason = END_REASON + str(job["end_behavior"])
        if p.stop_action != "STOP_ROLLOUT":
            status = JobStatus.CANCELED
    p.running = status is JobStatus.IN_PROGRESS
    p.rule = Rule.of(job["rollout"])
    p.increases, p.baseline = job["rate_increases"], job["increase_baseline"]
    p.released_until = job["released_until"]
    if p.stop_action is not None:
        p.ends = ENDS[p.stop_action]
        p.active = sum(job[{U: "unreleased", Q: "queued", P: "in_progress"}[source]] for source, _ in p.ends)
        return p
    if not p.running or p.unreleased == 0:
        return p
    rate = p.rule.rate(p.increases)
    if rate is not None and p.rule.increase_every and rate < (p.rule.max_rate or 0):
        count = (job["released"] or 0) if p.rule.increase_on == "notified" else job["succeeded"]
        if count - p.baseline >= p.rule.increase_every:
            p.increases, p.baseline = p.increases + 1, count
            rate = p.rule.rate(p.increases)
    p.rate = rate
    if rate is None:
        p.release = p.unreleased
    else:
        p.release, p.since = credit(rate, p.released_until, now)
        p.release = min(p.release, p.unreleased)
    return p


@dataclass
class TickResult:
    started: int = 0
    released: int = 0
    ended: int = 0
    stopped: int = 0  # executions ended because their job stopped (abort, end_time)
    completed: int = 0
    # (tenant_id, job_id, released, the rate in force) for every job this tick released for
    releases: list[tuple[str, str, int, int | None]] = field(default_factory=list)


def tick_batch(conn: Connection, now: datetime | None, jobs: int, budget: int, result: TickResult) -> int:
    """One batch of the tick, in the caller's transaction (the sweeper's, under the sweep lock);
    returns how many jobs were due."""
    due = conn.execute(DUE, {"now": now, "jobs": jobs}).fetchall()
    if not due:
        return 0
    at: datetime = due[0]["now"]
    plans = [plan(job, at) for job in due]
    left = budget
    released: dict[tuple[str, str], int] = {}
    takes, left = _allot([p.release for p in plans], left)
    for p, take in zip(plans, takes, strict=True):
        p.release = take
    wanted = [p for p in plans if p.release > 0]
    if wanted:
        for row in conn.execute(RELEASE, _moves(wanted, [p.release for p in wanted], now)):
            released[(row["tenant_id"], row["job_id"])] = row["moved"]
    ended: dict[tuple[str, str], int] = {}
    for move, statement in END_ROWS.items():
        stopping = [p for p in plans if move in p.ends]
        takes, _ = _allot([p.active - ended.get((p.tenant_id, p.job_id), 0) for p in stopping], left)
        moving = [(p, take) for p, take in zip(stopping, takes, strict=True) if take > 0]
        if not moving:
            continue
        for row in conn.execute(statement, _moves([p for p, _ in moving], [take for _, take in moving], now)):
            key = (row["tenant_id"], row["job_id"])
            ended[key] = ended.get(key, 0) + row["moved"]
            left -= row["moved"]
    # then the jobs' rows: start, end (before the completion check: a job canceled at its end is
    # not completed by its last execution ending), complete what a STOP_ROLLOUT left with nothing
    starting = [p for p in plans if p.start]
    if starting:
        result.started += conn.execute(START, {**_keys(starting), "now": now}).rowcount
    for statement, ending in (
        (END_CANCEL, [p for p in plans if p.end in ("CANCEL", "FORCE_CANCEL")]),
        (END_STOP, [p for p in plans if p.end == "STOP_ROLLOUT"]),
    ):
        if ending:
            result.ended += conn.execute(statement, {**_keys(ending), "now": now, "reason": END_REASON}).rowcount
    # what ended rows, what started now (a job whose executions all ended while it was SCHEDULED:
    # canceled one by one, its devices deleted, expired, completes as it starts), and what stopped
    # now (a continuous job stops following its targets at its end_time, and completes then if all
    # it had is over)
    done = [p for p in plans if (p.tenant_id, p.job_id) in ended or p.start or p.end == "STOP_ROLLOUT"]
    if done:
        found = conn.execute(COMPLETE, _keys(done)).fetchone()
        result.completed += found["completed"] if found else 0
    conn.execute(STATE, _state(plans, released, ended, at, left))
    result.released += sum(released.values())
    result.stopped += sum(ended.values())
    result.releases += [
        (p.tenant_id, p.job_id, released.get((p.tenant_id, p.job_id), 0), p.rate) for p in plans if p.release
    ]
    return len(due)


def _allot(wants: list[int], budget: int) -> tuple[list[int], int]:
    """The budget to the jobs in order (due longest first): what each may move, and what is left."""
    takes = []
    for want in wants:
        takes.append(min(want, budget))
        budget -= takes[-1]
    return takes, budget


def _keys(plans: list[Plan]) -> dict[str, list[str]]:
    return {"tenant_ids": [p.tenant_id for p in plans], "job_ids": [p.job_id for p in plans]}


def _moves(plans: list[Plan], takes: list[int], now: datetime | None) -> dict[str, Any]:
    reasons = Jsonb({f"{p.tenant_id} {p.job_id}": p.stop_reason or "" for p in plans})  # tenant ids have no space
    return {**_keys(plans), "takes": takes, "reasons": reasons, "now": now}


def _state(
    plans: list[Plan], released: dict[tuple[str, str], int], ended: dict[tuple[str, str], int], now: datetime, left: int
) -> dict[str, Any]:
    """Each job's rollout state after this batch, and when the schedule must look at it again."""
    rows: list[tuple[Any, ...]] = []
    for p in plans:
        key = (p.tenant_id, p.job_id)
        n = released.get(key, 0)
        unreleased = p.unreleased - n
        released_until, next_release = p.released_until, None
        if p.rate is not None and p.since is not None:
            released_until = spent(p.since, p.rate, n)
            next_release = released_until + timedelta(microseconds=60_000_000 // p.rate)
        if p.stop_action is not None:  # ending: again at once while something is left to end
            next_tick = now if p.active - ended.get(key, 0) > 0 and left == 0 else None
            next_release = None
        elif not p.running and not p.start and p.start_time is not None:  # still SCHEDULED
            next_tick = next_release = p.start_time
        elif p.running and unreleased > 0:
            if n < p.release:  # rows another transaction held: a little later
                next_release = now + timedelta(seconds=1)
            elif p.rate is None:  # not paced, the batch's budget ran out: the next batch
                next_release = now
            assert next_release is not None
            next_tick = min(next_release, p.end_time or next_release)
        else:
            next_tick = p.end_time if p.running and p.end_time is not None else None
        rows.append(
            (
                p.tenant_id,
                p.job_id,
                n,
                p.rate,
                p.increases,
                p.baseline,
                released_until,
                next_release,
                next_tick,
                p.stop_action,
            )
        )
    names = ["tenant_ids", "job_ids", "released", "rates", "increases", "baselines"]
    names += ["released_until", "next_release_at", "next_tick_at", "stop_actions"]
    return {name: [row[i] for row in rows] for i, name in enumerate(names)}
