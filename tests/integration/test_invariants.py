"""A seeded random driver runs claim, start-next, poll, read, progress (with step timeouts),
finish, fail (retried where the job allows), reject, cancel (soft and force, a job or one
execution), expire, sweeps (now, or minutes ahead: timeouts, releases, starts and ends), device
deletions and registrations again, devices joining and leaving a group, from many threads at once
against real PostgreSQL, on jobs for the group or every device, snapshot or continuous, that may be
paced, scheduled or carry an abort rule, and checks the invariants after every wave."""

from __future__ import annotations

import os
import random
import threading
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from jobs_core.domain import devices as registry
from jobs_core.domain import executions, groups, jobs_cancel, jobs_create
from jobs_core.domain.job_settings import JobCreate
from jobs_core.domain.models import DeviceTarget, ExecutionCancel, ExecutionUpdate, StartNext
from jobs_core.domain.statemachine import ACTIVE
from jobs_core.domain.sweep import SweepResult, sweep
from jobs_core.errors import Conflict, InvalidRequest, NotFound, Unauthorized
from jobs_core.store.db import Database
from tests.factories import Admin, Register, expire_job

SEED = int(os.environ.get("INVARIANTS_SEED", "20261123"))
THREADS, WAVES, DEVICES, JOBS = 8, 100, 6, 5
GROUP = "g"  # half the devices at first; devices join and leave it


def snapshot(admin: Admin, tenant: str) -> tuple[dict[tuple[str, str], dict[str, Any]], dict[str, str]]:
    rows = admin.execute(
        "SELECT job_id, device_id, status, status_details, execution_number, last_updated_at"
        " FROM job_executions WHERE tenant_id = %s",
        [tenant],
    ).fetchall()
    statuses = admin.execute("SELECT job_id, status FROM jobs WHERE tenant_id = %s", [tenant]).fetchall()
    return {(r["job_id"], r["device_id"]): r for r in rows}, {r["job_id"]: r["status"] for r in statuses}


def recount_matches(admin: Admin, tenant: str) -> bool:
    mismatches = admin.execute(
        """
        WITH kept AS (
            SELECT job_id, sum(queued) q, sum(in_progress) p, sum(succeeded) s, sum(failed) f,
                   sum(rejected) r, sum(timed_out) t, sum(unreleased) u, sum(canceled) x, sum(removed) v
            FROM job_execution_counts WHERE tenant_id = %(t)s GROUP BY job_id
        ), recount AS (
            SELECT job_id, count(*) FILTER (WHERE status = 'QUEUED') q,
                   count(*) FILTER (WHERE status = 'IN_PROGRESS') p,
                   count(*) FILTER (WHERE status = 'SUCCEEDED') s, count(*) FILTER (WHERE status = 'FAILED') f,
                   count(*) FILTER (WHERE status = 'REJECTED') r, count(*) FILTER (WHERE status = 'TIMED_OUT') t,
                   count(*) FILTER (WHERE status = 'UNRELEASED') u, count(*) FILTER (WHERE status = 'CANCELED') x,
                   count(*) FILTER (WHERE status = 'REMOVED') v
            FROM job_executions WHERE tenant_id = %(t)s GROUP BY job_id
        )
        SELECT count(*) AS n FROM kept FULL JOIN recount USING (job_id)
        WHERE (kept.q, kept.p, kept.s, kept.f, kept.r, kept.t, kept.u, kept.x, kept.v)
              IS DISTINCT FROM (recount.q, recount.p, recount.s, recount.f, recount.r, recount.t, recount.u, recount.x,
                                recount.v)
        """,
        {"t": tenant},
    ).fetchone()
    return mismatches == {"n": 0}


def test_invariants_hold_under_random_concurrent_operations(
    database_url: str, tenant: str, register: Register, admin: Admin
) -> None:
    rng = random.Random(SEED)
    tokens = register(tenant, DEVICES)
    devices = sorted(tokens)
    db = Database(lambda refresh: database_url)
    groups.add_to_group(db, tenant, GROUP, devices[: DEVICES // 2])

    def new_job(job_id: str, worker: Database, job_rng: random.Random) -> None:
        retry = [
            {"failure_type": job_rng.choice(["FAILED", "TIMED_OUT", "ALL"]), "number_of_retries": job_rng.randrange(3)}
        ]
        abort = [
            {
                "failure_type": job_rng.choice(["FAILED", "REJECTED", "TIMED_OUT", "ALL"]),
                "action": "CANCEL",
                "threshold_percentage": job_rng.choice([0, 30, 60]),
                "min_number_of_executed_things": job_rng.randrange(1, 4),
            }
        ]
        start = datetime.now(UTC) + timedelta(minutes=job_rng.choice([1, 3]))
        schedules = [None, {"start_time": start.isoformat()}, {"end_time": (start + timedelta(minutes=35)).isoformat(),
                     "end_behavior": job_rng.choice(["STOP_ROLLOUT", "CANCEL", "FORCE_CANCEL"])}]  # fmt: skip
        job = JobCreate.model_validate(
            {
                "job_id": job_id,
                "document_type": "x",
                **job_rng.choice([{"target_all": True}, {"target_all": True}, {"target_group_id": GROUP}]),
                "target_selection": job_rng.choice(["SNAPSHOT", "SNAPSHOT", "CONTINUOUS"]),
                "timeout_minutes": job_rng.choice([None, 1, 2, 5]),
                "retry": job_rng.choice([None, retry]),
                "rollout": job_rng.choice([None, {"maximum_per_minute": job_rng.randrange(1, 4)}]),
                "abort": job_rng.choice([None, None, abort]),
                "scheduling": job_rng.choice(schedules),
            }
        )
        jobs_create.create(worker, tenant, "driver", job)

    for j in range(JOBS):
        new_job(f"job-{j}", db, rng)
    job_ids = [f"job-{j}" for j in range(JOBS)]
    workers = [Database(lambda refresh: database_url) for _ in range(THREADS)]
    accepted: Counter[tuple[str, str]] = Counter()
    versions_seen: defaultdict[tuple[str, str], list[int]] = defaultdict(list)
    outcomes: Counter[str] = Counter()
    seen: set[tuple[str, str]] = set()  # (job, device) executions a device was shown
    gone: set[str] = set()  # devices deleted and not registered again yet
    lock = threading.Lock()

    def saw(job_id: str, device: str) -> None:
        with lock:
            seen.add((job_id, device))

    def swept(result: SweepResult) -> None:
        """Releases per tick never exceed the rate in force."""
        for _, job_id, n, rate in result.releases:
            assert rate is None or n <= rate, (job_id, n, rate)

    def operation(worker: Database, op_rng: random.Random) -> None:
        with lock:
            job_id, device = op_rng.choice(job_ids[-8:]), op_rng.choice(devices)  # mostly the recent jobs
        op = op_rng.choices(
            [
                "create", "claim", "start-next", "progress", "succeed", "fail", "reject",
                "cancel", "force-cancel", "cancel-one", "expire", "sweep", "sweep-later", "poll", "read",
                "delete-device", "register-again", "join", "leave",
            ],
            weights=[4, 24, 8, 20, 12, 8, 6, 2, 1, 2, 1, 3, 3, 4, 3, 1, 1, 3, 3],
        )[0]  # fmt: skip
        try:
            if op in ("claim", "progress", "succeed", "fail", "reject"):
                status: DeviceTarget = {"claim": "IN_PROGRESS", "progress": "IN_PROGRESS", "succeed": "SUCCEEDED"}.get(
                    op, "FAILED" if op == "fail" else "REJECTED"
                )  # type: ignore[assignment]
                details = {"by": "device", "n": op_rng.randrange(1000)} if op != "claim" else None
                step = op_rng.choice([None, 1, 3]) if status == "IN_PROGRESS" else None
                done = executions.update(
                    worker,
                    tokens[device],
                    job_id,
                    ExecutionUpdate(status=status, status_details=details, step_timeout_minutes=step),
                )
                saw(job_id, device)
                with lock:
                    accepted[(job_id, device)] += 1
                    versions_seen[(job_id, device)].append(done.execution_number)
            elif op == "start-next":
                started = executions.start_next(worker, tokens[device], StartNext(step_timeout_minutes=2))
                if started.execution:
                    saw(started.execution.job_id, device)
                if started.claimed and started.execution:  # a claim is an accepted update, a resume is not
                    with lock:
                        accepted[(started.execution.job_id, device)] += 1
                        versions_seen[(started.execution.job_id, device)].append(started.execution.execution_number)
            elif op == "create":
                new_id = f"job-{op_rng.randrange(10**9)}"
                new_job(new_id, worker, op_rng)
                with lock:
                    job_ids.append(new_id)
            elif op in ("cancel", "force-cancel"):
                jobs_cancel.cancel(worker, tenant, job_id, "driver cancel", force=op == "force-cancel")
            elif op == "cancel-one":
                jobs_cancel.cancel_execution(
                    worker, tenant, job_id, device, ExecutionCancel(reason="one"), force=op_rng.random() < 0.5
                )
            elif op == "expire":
                with worker.transaction(role="jobs_sweeper") as conn:
                    expire_job(conn, tenant, job_id)
            elif op == "poll":
                for pending in executions.pending(worker, tokens[device]).jobs:
                    saw(pending.job_id, device)
            elif op == "read":
                saw(executions.describe(worker, tokens[device], job_id).job_id, device)
            elif op == "delete-device":
                registry.delete(worker, tenant, device)
                with lock:
                    gone.add(device)
            elif op == "register-again":  # a device deleted earlier comes back, a new device with a new token
                with lock:
                    back = min(gone, default=device)
                    tokens[back] = registry.register(worker, tenant, [back])[back]
                    gone.discard(back)
            elif op == "join":
                groups.add_member(worker, tenant, GROUP, device)
            elif op == "leave":
                groups.remove_member(worker, tenant, GROUP, device)
            elif op == "sweep":
                swept(sweep(worker, batch_size=7))
            else:  # minutes ahead: timeouts of what runs now, releases, the scheduled starts and ends
                at = datetime.now(UTC) + timedelta(minutes=op_rng.choice([2, 4, 6, 40]))
                swept(sweep(worker, batch_size=7, now=at))
            outcome = "ok"
        except (InvalidRequest, Conflict, NotFound, Unauthorized) as refused:
            outcome = type(refused).__name__
        with lock:
            outcomes[f"{op}:{outcome}"] += 1

    terminal_before: dict[tuple[str, str], dict[str, Any]] = {}
    attempts_before: dict[tuple[str, str, int], dict[str, Any]] = {}
    canceled: set[str] = set()
    aborted: set[str] = set()
    checks = 0
    for wave in range(1, WAVES + 1):
        seeds = [rng.randrange(2**32) for _ in range(THREADS)]
        barrier = threading.Barrier(THREADS)

        def run(i: int, seeds: list[int] = seeds, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            operation(workers[i], random.Random(seeds[i]))

        threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        if wave % 10 == 0:  # a sweep at a time: nothing stays IN_PROGRESS past its deadline
            at = datetime.now(UTC) + timedelta(minutes=3)
            swept(sweep(db, now=at, max_batches=1000))
            late = admin.execute(
                "SELECT count(*) AS n FROM job_executions WHERE tenant_id = %s AND status = 'IN_PROGRESS'"
                " AND timeout_at <= %s",
                [tenant, at],
            ).fetchone()
            assert late == {"n": 0}
        rows, job_status = snapshot(admin, tenant)
        attempts = {
            (r["job_id"], r["device_id"], r["attempt"]): r
            for r in admin.execute("SELECT * FROM job_execution_attempts WHERE tenant_id = %s", [tenant])
        }
        # a terminal execution never changes, nor does an attempt once it ended
        for key, row in terminal_before.items():
            assert rows[key] == row, key
        terminal_before = {k: r for k, r in rows.items() if r["status"] not in ACTIVE}
        for ended_key, ended in attempts_before.items():
            assert attempts[ended_key] == ended, ended_key
        attempts_before = attempts
        # attempts never exceed the retries allowed plus one
        over = admin.execute(
            "SELECT count(*) AS n FROM job_executions e JOIN jobs j USING (tenant_id, job_id)"
            " WHERE e.tenant_id = %s AND e.attempt > 1 + CASE WHEN j.retries_shared THEN j.retries_failed"
            " ELSE j.retries_failed + j.retries_timed_out END",
            [tenant],
        ).fetchone()
        assert over == {"n": 0}
        # execution_number: 1, plus one per accepted device update (claims by start-next included),
        # plus one per change the system made: a time-out (retried or final), a cancel
        timed_out_attempts = Counter((k[0], k[1]) for k, r in attempts.items() if r["status"] == "TIMED_OUT")
        for key, row in rows.items():
            by_system = timed_out_attempts[key] + (
                row["status"] in ("TIMED_OUT", "CANCELED", "REMOVED")
                or (row["status"] == "REJECTED" and "reason" in (row["status_details"] or {}))
            )
            assert row["execution_number"] == 1 + accepted[key] + by_system, (key, row, accepted[key])
            assert sorted(versions_seen[key]) == sorted(set(versions_seen[key])), key  # no version twice
        # a job is COMPLETED exactly when all its executions are terminal (unless it was canceled,
        # or aborted: an aborted job never completes)
        following = {
            r["job_id"]
            for r in admin.execute(
                "SELECT job_id FROM jobs WHERE tenant_id = %s AND target_selection = 'CONTINUOUS'"
                " AND stop_action IS NULL AND (expires_at IS NULL OR expires_at > now())",
                [tenant],
            )
        }
        for job_id, status in job_status.items():
            all_terminal = all(r["status"] not in ACTIVE for k, r in rows.items() if k[0] == job_id)
            if status == "COMPLETED":
                assert all_terminal and job_id not in canceled, job_id
                assert job_id not in following, job_id  # a continuous job never completes while it follows
            elif status == "IN_PROGRESS" and job_id not in following:
                assert not all_terminal, job_id
            if job_id in aborted:
                assert status == "CANCELED", job_id
        # a continuous job that follows: every device that is its target has its execution, and every
        # execution not started yet is of a device that is still its target (but for a retry: an
        # execution that ran when its device left goes on, its retries included)
        missing = admin.execute(
            """
            SELECT j.job_id, d.device_id FROM jobs j
            JOIN job_targets t ON t.tenant_id = j.tenant_id AND t.job_id = j.job_id
            JOIN device_state d ON d.tenant_id = j.tenant_id AND (t.kind = 'all' OR EXISTS (
                SELECT 1 FROM device_group_members m
                WHERE m.tenant_id = d.tenant_id AND m.group_id = t.target_id AND m.device_id = d.device_id))
            WHERE j.tenant_id = %(t)s AND j.job_id = ANY(%(following)s) AND j.status IN ('SCHEDULED', 'IN_PROGRESS')
              AND NOT EXISTS (SELECT 1 FROM job_executions e
                              WHERE e.tenant_id = j.tenant_id AND e.job_id = j.job_id AND e.device_id = d.device_id)
            """,
            {"t": tenant, "following": list(following)},
        ).fetchall()
        assert missing == []
        strays = admin.execute(
            """
            SELECT e.job_id, e.device_id, e.status, e.attempt, e.execution_number FROM job_executions e
            JOIN job_targets t ON t.tenant_id = e.tenant_id AND t.job_id = e.job_id AND t.kind = 'group'
            WHERE e.tenant_id = %(t)s AND e.job_id = ANY(%(following)s) AND e.status IN ('UNRELEASED', 'QUEUED')
              AND e.attempt = 1 AND NOT EXISTS (SELECT 1 FROM device_group_members m WHERE m.tenant_id = e.tenant_id
                              AND m.group_id = t.target_id AND m.device_id = e.device_id)
            """,
            {"t": tenant, "following": list(following)},
        ).fetchall()
        assert strays == []
        canceled |= {job_id for job_id, status in job_status.items() if status == "CANCELED"}
        aborted |= {
            row["job_id"]
            for row in admin.execute(
                "SELECT job_id FROM jobs WHERE tenant_id = %s AND stop_reason LIKE 'aborted:%%'", [tenant]
            )
        }
        # no device was ever shown an execution before its release (nothing becomes UNRELEASED again)
        with lock:
            shown = set(seen)
        assert not [key for key in shown if rows[key]["status"] == "UNRELEASED"]
        assert recount_matches(admin, tenant)
        # a deleted device leaves no execution that is not terminal
        orphans = admin.execute(
            "SELECT count(*) AS n FROM job_executions e WHERE e.tenant_id = %s"
            " AND e.status IN ('UNRELEASED', 'QUEUED', 'IN_PROGRESS') AND NOT EXISTS"
            " (SELECT 1 FROM device_state d WHERE d.tenant_id = e.tenant_id AND d.device_id = e.device_id)",
            [tenant],
        ).fetchone()
        assert orphans == {"n": 0}
        checks += 1

    for worker in workers:
        worker.close()
    db.close()
    ran = sum(outcomes.values())
    print(f"\ninvariants: seed {SEED}, {ran} operations, {checks} checks, outcomes {dict(sorted(outcomes.items()))}")
    assert ran == THREADS * WAVES
    assert outcomes["claim:ok"] and outcomes["succeed:ok"] and outcomes["cancel:ok"]
    assert outcomes["delete-device:ok"] and outcomes["join:ok"] and outcomes["leave:ok"]
    assert aborted and shown, "the run aborted no job or showed devices nothing: it tested little"
