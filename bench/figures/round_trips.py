"""1. Round trips per device call: each call of the layer through a relay that counts them."""

from __future__ import annotations

from bench.dataset import SMALL, Dataset, token
from bench.harness import Call, Figure
from bench.instruments import RoundTripCounter, round_trips_per_call
from jobs_core.domain import executions, jobs_create
from jobs_core.domain.job_settings import JobCreate
from jobs_core.domain.models import ExecutionUpdate, StartNext
from jobs_core.store.db import Database


def run(data: Dataset) -> list[Figure]:
    counter = RoundTripCounter(data.url)
    counted = Database(lambda refresh: counter.conninfo)
    counted.connection()
    for job_id in ("rt", "rt-next"):
        jobs_create.create(data.db, SMALL, "bench", JobCreate(job_id=job_id, document_type="x", target_all=True))
    me = token(SMALL, data.take(1, SMALL)[0])
    calls: dict[str, Call] = {
        "pending": lambda: executions.pending(counted, me),
        "describe": lambda: executions.describe(counted, me, "rt"),
        "claim": lambda: executions.update(counted, me, "rt", ExecutionUpdate(status="IN_PROGRESS")),
        "progress": lambda: executions.update(
            counted, me, "rt", ExecutionUpdate(status="IN_PROGRESS", status_details={"p": 1})
        ),
        "progress with a step timeout": lambda: executions.update(
            counted, me, "rt", ExecutionUpdate(status="IN_PROGRESS", step_timeout_minutes=5)
        ),
        "finish": lambda: executions.update(counted, me, "rt", ExecutionUpdate(status="SUCCEEDED")),
        "start-next": lambda: executions.start_next(counted, me, StartNext(step_timeout_minutes=5)),
    }
    trips = round_trips_per_call(counter, calls)
    counted.close()
    counter.close()
    detail = ", ".join(f"{k} {v}" for k, v in trips.items())
    return [Figure("1. round trips per device call", detail, "1", max(trips.values()), "1")]
