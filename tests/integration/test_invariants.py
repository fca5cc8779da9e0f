"""A seeded random driver runs claim, progress, finish, reject, cancel, expire and sweep from
many threads at once against real PostgreSQL, and checks the invariants after every wave."""

from __future__ import annotations

import os
import random
import threading
from collections import Counter, defaultdict
from typing import Any

from jobs_core import executions, jobs
from jobs_core.db import Database
from jobs_core.errors import Conflict, InvalidRequest, NotFound
from jobs_core.models import DeviceTarget, ExecutionUpdate, JobCreate
from jobs_core.sweep import sweep
from tests.factories import Admin, Register, expire_job

SEED = int(os.environ.get("INVARIANTS_SEED", "20261123"))
THREADS, WAVES, DEVICES, JOBS = 8, 100, 6, 5


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
                   sum(rejected) r, sum(timed_out) t
            FROM job_execution_counts WHERE tenant_id = %(t)s GROUP BY job_id
        ), recount AS (
            SELECT job_id, count(*) FILTER (WHERE status = 'QUEUED') q,
                   count(*) FILTER (WHERE status = 'IN_PROGRESS') p,
                   count(*) FILTER (WHERE status = 'SUCCEEDED') s, count(*) FILTER (WHERE status = 'FAILED') f,
                   count(*) FILTER (WHERE status = 'REJECTED') r, count(*) FILTER (WHERE status = 'TIMED_OUT') t
            FROM job_executions WHERE tenant_id = %(t)s GROUP BY job_id
        )
        SELECT count(*) AS n FROM kept FULL JOIN recount USING (job_id)
        WHERE (kept.q, kept.p, kept.s, kept.f, kept.r, kept.t)
              IS DISTINCT FROM (recount.q, recount.p, recount.s, recount.f, recount.r, recount.t)
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
    for j in range(JOBS):
        jobs.create(db, tenant, "driver", JobCreate(job_id=f"job-{j}", document_type="x", target_all=True))
    job_ids = [f"job-{j}" for j in range(JOBS)]
    workers = [Database(lambda refresh: database_url) for _ in range(THREADS)]
    accepted: Counter[tuple[str, str]] = Counter()
    versions_seen: defaultdict[tuple[str, str], list[int]] = defaultdict(list)
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def operation(worker: Database, op_rng: random.Random) -> None:
        with lock:
            job_id, device = op_rng.choice(job_ids[-8:]), op_rng.choice(devices)  # mostly the recent jobs
        op = op_rng.choices(
            ["create", "claim", "progress", "succeed", "fail", "reject", "cancel", "expire", "sweep"],
            weights=[4, 30, 20, 12, 6, 6, 2, 1, 4],
        )[0]
        try:
            if op in ("claim", "progress", "succeed", "fail", "reject"):
                status: DeviceTarget = {"claim": "IN_PROGRESS", "progress": "IN_PROGRESS", "succeed": "SUCCEEDED"}.get(
                    op, "FAILED" if op == "fail" else "REJECTED"
                )  # type: ignore[assignment]
                details = {"by": "device", "n": op_rng.randrange(1000)} if op != "claim" else None
                done = executions.update(
                    worker, tokens[device], job_id, ExecutionUpdate(status=status, status_details=details)
                )
                with lock:
                    accepted[(job_id, device)] += 1
                    versions_seen[(job_id, device)].append(done.execution_number)
            elif op == "create":
                new_id = f"job-{op_rng.randrange(10**9)}"
                jobs.create(worker, tenant, "driver", JobCreate(job_id=new_id, document_type="x", target_all=True))
                with lock:
                    job_ids.append(new_id)
            elif op == "cancel":
                jobs.cancel(worker, tenant, job_id, "driver cancel")
            elif op == "expire":
                with worker.transaction(role="jobs_sweeper") as conn:
                    expire_job(conn, tenant, job_id)
            else:
                sweep(worker, batch_size=7)
            outcome = "ok"
        except (InvalidRequest, Conflict, NotFound) as refused:
            outcome = type(refused).__name__
        with lock:
            outcomes[f"{op}:{outcome}"] += 1

    terminal_before: dict[tuple[str, str], dict[str, Any]] = {}
    canceled: set[str] = set()
    checks = 0
    for _ in range(WAVES):
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

        rows, job_status = snapshot(admin, tenant)
        # a terminal execution never changes
        for key, row in terminal_before.items():
            assert rows[key] == row, key
        terminal_before = {k: r for k, r in rows.items() if r["status"] not in ("QUEUED", "IN_PROGRESS")}
        # execution_number: 1, plus one per accepted device update, plus one for a cancel or a time-out
        for key, row in rows.items():
            by_system = row["status"] == "TIMED_OUT" or (
                row["status"] == "REJECTED" and "reason" in (row["status_details"] or {})
            )
            assert row["execution_number"] == 1 + accepted[key] + by_system, (key, row, accepted[key])
            assert sorted(versions_seen[key]) == list(range(2, 2 + accepted[key])), key
        # a job is COMPLETED exactly when all its executions are terminal (unless it was canceled)
        for job_id, status in job_status.items():
            all_terminal = all(r["status"] not in ("QUEUED", "IN_PROGRESS") for k, r in rows.items() if k[0] == job_id)
            if status == "COMPLETED":
                assert all_terminal and job_id not in canceled, job_id
            elif status == "IN_PROGRESS":
                assert not all_terminal, job_id
        canceled |= {job_id for job_id, status in job_status.items() if status == "CANCELED"}
        assert recount_matches(admin, tenant)
        checks += 1

    for worker in workers:
        worker.close()
    db.close()
    ran = sum(outcomes.values())
    print(f"\ninvariants: seed {SEED}, {ran} operations, {checks} checks, outcomes {dict(sorted(outcomes.items()))}")
    assert ran == THREADS * WAVES
    assert outcomes["claim:ok"] and outcomes["succeed:ok"] and outcomes["cancel:ok"]
