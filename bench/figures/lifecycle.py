"""12. The lifecycle at scale: a sweep of 100,000 IN_PROGRESS executions past their deadline
against a raw UPDATE of as many rows, in turn; and a device update in a 100,000-device job with
retries and timeouts (a progress with a step timeout, a FAILED with a retry left) against the
same in a 10-device job."""

from __future__ import annotations

import statistics
import time

from bench.dataset import BIG, SMALL, SMALL_DEVICES, Dataset, token
from bench.harness import Figure, ms, p50_ratio
from jobs_core.domain import executions, jobs_create
from jobs_core.domain.job_settings import JobCreate
from jobs_core.domain.models import ExecutionUpdate
from jobs_core.domain.sweep import sweep


def lifecycle_job(job_id: str) -> JobCreate:
    return JobCreate.model_validate(
        {
            "job_id": job_id,
            "document_type": "x",
            "target_all": True,
            "timeout_minutes": 60,
            "retry": [{"failure_type": "ALL", "number_of_retries": 3}],
        }
    )


# Every execution of a job claimed and past its deadline, as the sweep would find them an hour
# after 100,000 claims (set by SQL: 100,000 claims through the API would take minutes).
# (The raw UPDATE's rows are claimed alike but not yet due, so that the sweep leaves them alone.)
CLAIMED = """
UPDATE job_executions SET status = 'IN_PROGRESS', execution_number = 2, started_at = now() - interval '2 hours',
       timeout_at = now() + %(due_in)s * interval '1 hour', sweep_at = now() + %(due_in)s * interval '1 hour'
WHERE tenant_id = %(t)s AND job_id = %(j)s
"""
RAW = """
UPDATE job_executions SET status = 'TIMED_OUT', execution_number = execution_number + 1, last_updated_at = now(),
       timeout_at = NULL, sweep_at = NULL
WHERE tenant_id = %(t)s AND job_id = %(j)s AND status = 'IN_PROGRESS'
"""


def run(data: Dataset) -> list[Figure]:
    return [timed_out_sweep(data), update_cost(data)]


def timed_out_sweep(data: Dataset) -> Figure:
    tries = 2 if data.quick else 3
    ours_s, raw_s, swept = [], [], 0
    for i in range(tries):
        for job_id, due_in in ((f"deadline-{i}", -1), (f"deadline-raw-{i}", 1)):
            job = JobCreate(job_id=job_id, document_type="x", target_all=True, timeout_minutes=60)
            jobs_create.create(data.db, BIG, "bench", job)
            data.admin.execute(CLAIMED, {"t": BIG, "j": job_id, "due_in": due_in})
        data.admin.execute("VACUUM ANALYZE job_executions")
        for which in ("ours", "raw") if i % 2 else ("raw", "ours"):
            t0 = time.perf_counter()
            if which == "raw":
                data.admin.execute(RAW, {"t": BIG, "j": f"deadline-raw-{i}"})
                raw_s.append(time.perf_counter() - t0)
            else:
                result = sweep(data.db, max_batches=10_000)
                ours_s.append(time.perf_counter() - t0)
                swept = result.timed_out
    ours, raw = statistics.median(ours_s), statistics.median(raw_s)
    return Figure(
        f"12. sweep {swept:,} IN_PROGRESS executions past their deadline, median of {tries}",
        f"{ours * 1000:.0f} ms",
        f"raw UPDATE of as many: {raw * 1000:.0f} ms",
        ours / raw,
        "<= 1.5",
    )


def update_cost(data: Dataset) -> Figure:
    """Per device: claim, a progress with a step timeout, a FAILED that is retried (timed: the two)."""
    n = min(data.reps // 10, 100)
    mine = data.take(n)
    jobs_create.create(data.db, BIG, "bench", lifecycle_job("big-lifecycle"))
    for k in range(n // SMALL_DEVICES + 1):
        jobs_create.create(data.db, SMALL, "bench", lifecycle_job(f"small-life-{k}"))
    big: list[float] = []
    small: list[float] = []

    def lifecycle(device_token: str, job_id: str, into: list[float]) -> None:
        executions.update(data.db, device_token, job_id, ExecutionUpdate(status="IN_PROGRESS"))
        t0 = time.perf_counter()
        executions.update(data.db, device_token, job_id, ExecutionUpdate(status="IN_PROGRESS", step_timeout_minutes=5))
        into.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        failed = executions.update(data.db, device_token, job_id, ExecutionUpdate(status="FAILED"))
        into.append((time.perf_counter() - t0) * 1000)
        assert failed.status == "QUEUED", failed  # retried

    for i, device in enumerate(mine):
        lifecycle(token(BIG, device), "big-lifecycle", big)
        lifecycle(token(SMALL, i % SMALL_DEVICES), f"small-life-{i // SMALL_DEVICES}", small)
    return Figure(
        f"12. a device update (step timeout, retried FAILED), {data.devices:,}-device job with retries, timeouts",
        ms(big),
        f"in a 10-device job: {ms(small)}",
        p50_ratio(big, small),
        "<= 1.2",
    )
