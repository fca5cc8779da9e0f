"""13. Rollouts, in a tenant of their own (--devices devices): a release tick of 1,000 executions
of a 100,000-device paced job against a raw UPDATE of the same 1,000 rows; a tick for 1,000 jobs
in rollout at once against a raw UPDATE of what it released; a device's poll with a pending
execution of a job in rollout against one of a job without; and the finishing update that
crosses a job's abort rule (and one that does not) against a plain finish."""

from __future__ import annotations

import statistics
import time
from datetime import datetime, timedelta

from bench.dataset import Dataset, device_id, new_group, register_fleet, token
from bench.harness import Figure, interleaved, ms, p50_ratio
from jobs_core.domain import executions, jobs_create
from jobs_core.domain.job_settings import JobCreate
from jobs_core.domain.models import ExecutionUpdate
from jobs_core.domain.sweep import sweep

TENANT = "fleet-rollout"
MANY_JOBS, GROUP_SIZE, RATE = 1000, 20, 5

HOLD_BACK = """
UPDATE job_executions SET status = 'UNRELEASED'
WHERE tenant_id = %(t)s AND job_id = %(j)s AND device_id = ANY(%(ids)s)
"""
RAW_RELEASE = """
UPDATE job_executions SET status = 'QUEUED', queued_at = now(), last_updated_at = now()
WHERE tenant_id = %(t)s AND job_id = %(j)s AND device_id = ANY(%(ids)s)
"""
RAW_RELEASE_MANY = """
UPDATE job_executions e SET status = 'QUEUED', queued_at = now(), last_updated_at = now()
FROM unnest(%(jobs)s::text[], %(ids)s::text[]) AS r(job_id, device_id)
WHERE e.tenant_id = %(t)s AND e.job_id = r.job_id AND e.device_id = r.device_id
"""
RELEASED_BY = """
SELECT job_id, device_id FROM job_executions
WHERE tenant_id = %(t)s AND job_id LIKE %(like)s AND status = 'QUEUED' AND queued_at = %(at)s
"""


def run(data: Dataset) -> list[Figure]:
    register_fleet(data.admin, TENANT, data.devices)
    data.admin.execute("ANALYZE device_state")
    return [release_tick(data), poll(data), many_jobs_tick(data), *abort_update(data)]


def created_at(data: Dataset, job_id: str) -> datetime:
    row = data.admin.execute("SELECT created_at FROM jobs WHERE tenant_id = %s AND job_id = %s", [TENANT, job_id])
    found = row.fetchone()
    assert found is not None
    return found[0]  # type: ignore[no-any-return]


def release_tick(data: Dataset) -> Figure:
    """Each round: the tick releases the job's next 1,000; the same rows are held back again and
    released by a raw UPDATE (and held back again), the two in turn."""
    paced = JobCreate.model_validate(
        {"job_id": "paced", "document_type": "x", "target_all": True, "rollout": {"maximum_per_minute": 1000}}
    )
    jobs_create.create(data.db, TENANT, "bench", paced)
    data.admin.execute("VACUUM ANALYZE job_executions")
    t0 = created_at(data, "paced")
    nexts = data.admin.execute(
        "SELECT device_id FROM job_executions WHERE tenant_id = %s AND job_id = 'paced' AND status = 'UNRELEASED'"
        " ORDER BY device_id LIMIT 1000",
        [TENANT],
    ).fetchall()
    ids = [row[0] for row in nexts]  # what every tick releases: the rows are held back again after
    rounds = 5 if data.quick else 15
    ours_s, raw_s = [], []
    for i in range(1, rounds + 1):
        at = t0 + timedelta(minutes=i)
        for which in ("ours", "raw") if i % 2 else ("raw", "ours"):
            started = time.perf_counter()
            if which == "ours":
                result = sweep(data.db, now=at)
                ours_s.append(time.perf_counter() - started)
                released = data.admin.execute(RELEASED_BY, {"t": TENANT, "like": "paced", "at": at}).fetchall()
                assert result.released == 1000 and sorted(r[1] for r in released) == ids, result
            else:
                data.admin.execute(RAW_RELEASE, {"t": TENANT, "j": "paced", "ids": ids})
                raw_s.append(time.perf_counter() - started)
            data.admin.execute(HOLD_BACK, {"t": TENANT, "j": "paced", "ids": ids})
    ours, raw = statistics.median(ours_s), statistics.median(raw_s)
    return Figure(
        f"13. a release tick of 1,000 executions of a {data.devices:,}-device paced job, median of {rounds}",
        f"{ours * 1000:.1f} ms",
        f"raw UPDATE of the same 1,000 rows: {raw * 1000:.1f} ms",
        ours / raw,
        "<= 1.5",
    )


def many_jobs_tick(data: Dataset) -> Figure:
    """1,000 jobs of 20 devices each, paced at 5 a minute: a tick a minute later releases 5 of each."""
    for k in range(MANY_JOBS):
        new_group(data.admin, TENANT, f"g{k}")
        data.admin.execute(
            "INSERT INTO device_group_members (tenant_id, group_id, device_id)"
            " SELECT %s, %s, device_id FROM device_state WHERE tenant_id = %s AND device_id >= %s"
            " ORDER BY device_id LIMIT %s",
            [TENANT, f"g{k}", TENANT, device_id(k * GROUP_SIZE % data.devices), GROUP_SIZE],
        )
        job = {"job_id": f"many-{k:04d}", "document_type": "x", "target_group_id": f"g{k}"}
        jobs_create.create(
            data.db, TENANT, "bench", JobCreate.model_validate({**job, "rollout": {"maximum_per_minute": RATE}})
        )
    data.admin.execute("VACUUM ANALYZE")
    at = created_at(data, f"many-{MANY_JOBS - 1:04d}") + timedelta(minutes=1)
    started = time.perf_counter()
    result = sweep(data.db, now=at)
    ours = time.perf_counter() - started
    rows = data.admin.execute(RELEASED_BY, {"t": TENANT, "like": "many-%", "at": at}).fetchall()
    data.admin.execute(
        HOLD_BACK.replace("job_id = %(j)s AND device_id = ANY(%(ids)s)", "queued_at = %(at)s"), {"t": TENANT, "at": at}
    )
    started = time.perf_counter()
    data.admin.execute(RAW_RELEASE_MANY, {"t": TENANT, "jobs": [r[0] for r in rows], "ids": [r[1] for r in rows]})
    raw = time.perf_counter() - started
    return Figure(
        f"13. a tick for {MANY_JOBS:,} jobs in rollout at once: {result.released:,} released in "
        f"{result.released // RATE:,} jobs",
        f"{ours * 1000:.0f} ms",
        f"raw UPDATE of the same {len(rows):,} rows: {raw * 1000:.0f} ms",
        ours / raw,
        "bounded (<= 3)",
    )


def poll(data: Dataset) -> Figure:
    """A device whose pending execution is of the paced job (released) against one whose pending
    execution is of a job without a rollout (its execution of the paced job not yet released)."""
    in_rollout = 5  # among the first released
    other = data.devices - 5  # not released
    jobs_create.create(
        data.db, TENANT, "bench", JobCreate(job_id="plain", document_type="x", target_device_id=device_id(other))
    )
    pending = {
        "in rollout": lambda: executions.pending(data.db, token(TENANT, in_rollout)),
        "plain": lambda: executions.pending(data.db, token(TENANT, other)),
    }
    assert [j.job_id for j in pending["in rollout"]().jobs] == ["paced"]
    assert [j.job_id for j in pending["plain"]().jobs] == ["plain"]
    samples = interleaved(pending, data.reps)  # type: ignore[arg-type]
    return Figure(
        "13. a device poll, its pending execution of a job in rollout",
        ms(samples["in rollout"]),
        f"of a job without: {ms(samples['plain'])}",
        p50_ratio(samples["in rollout"], samples["plain"]),
        "<= 1.1",
    )


def abort_update(data: Dataset) -> list[Figure]:
    """A FAILED finish in a 10,000-device job: one that crosses the job's abort rule (which cancels
    it), one in a job whose rule it does not cross, and one in a job without a rule, in turn."""
    n = 5 if data.quick else 15
    size = min(10_000, data.devices)
    group = "ten-thousand"
    new_group(data.admin, TENANT, group)
    data.admin.execute(
        "INSERT INTO device_group_members (tenant_id, group_id, device_id)"
        " SELECT tenant_id, %s, device_id FROM device_state WHERE tenant_id = %s ORDER BY device_id LIMIT %s",
        [group, TENANT, size],
    )
    rules = {
        "aborts": [{"failure_type": "FAILED", "action": "CANCEL", "threshold_percentage": 0,
                    "min_number_of_executed_things": 1}],
        "does not cross": [{"failure_type": "FAILED", "action": "CANCEL", "threshold_percentage": 0,
                            "min_number_of_executed_things": 10**9}],
        "plain": None,
    }  # fmt: skip
    times: dict[str, list[float]] = {name: [] for name in rules}
    device = token(TENANT, 7)
    for i in range(n):
        for name, abort in rules.items():
            job_id = f"abort-{i}-{name.replace(' ', '-')}"
            job = {"job_id": job_id, "document_type": "x", "target_group_id": group, "abort": abort}
            jobs_create.create(data.db, TENANT, "bench", JobCreate.model_validate(job))
            executions.update(data.db, device, job_id, ExecutionUpdate(status="IN_PROGRESS"))
        for name in rules if i % 2 else reversed(rules):
            job_id = f"abort-{i}-{name.replace(' ', '-')}"
            started = time.perf_counter()
            executions.update(data.db, device, job_id, ExecutionUpdate(status="FAILED"))
            times[name].append((time.perf_counter() - started) * 1000)
        state = data.admin.execute(
            "SELECT status FROM jobs WHERE tenant_id = %s AND job_id = %s", [TENANT, f"abort-{i}-aborts"]
        ).fetchone()
        assert state is not None and state[0] == "CANCELED", state
    return [
        Figure(
            f"13. the finishing update that aborts a {size:,}-device job",
            ms(times["aborts"]),
            f"a plain finish: {ms(times['plain'])}",
            p50_ratio(times["aborts"], times["plain"]),
            "report",
        ),
        Figure(
            f"13. a finish in a {size:,}-device job with an abort rule it does not cross",
            ms(times["does not cross"]),
            f"a plain finish: {ms(times['plain'])}",
            p50_ratio(times["does not cross"], times["plain"]),
            "report",
        ),
    ]
