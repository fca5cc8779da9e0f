"""14. AWS IoT Jobs' data plane: round trips per call (through a relay that counts them), and the
warm handler latency (in-process, a warm container) of GetPendingJobExecutions against the native
pending call and of UpdateJobExecution against the native update, taken in turn."""

from __future__ import annotations

import uuid

from bench.container import handler_call, use_container_database
from bench.dataset import SMALL, Dataset, device_id, token
from bench.harness import Call, Figure, interleaved, ms, p50_ratio
from bench.instruments import RoundTripCounter, round_trips_per_call
from jobs_core.aws import data_plane
from jobs_core.aws.shapes import StartNextPendingJobExecutionRequest, UpdateJobExecutionRequest
from jobs_core.domain import jobs_create
from jobs_core.domain.job_settings import JobCreate
from jobs_core.store.db import Database


def run(data: Dataset) -> list[Figure]:
    return [round_trips(data), *latency(data)]


def round_trips(data: Dataset) -> Figure:
    counter = RoundTripCounter(data.url)
    counted = Database(lambda refresh: counter.conninfo)
    counted.connection()
    job_id = f"aws-rt-{uuid.uuid4().hex[:6]}"
    jobs_create.create(data.db, SMALL, "bench", JobCreate(job_id=job_id, document_type="x", target_all=True))
    i = data.take(1, SMALL)[0]
    me, thing = token(SMALL, i), device_id(i)
    calls: dict[str, Call] = {
        "GetPendingJobExecutions": lambda: data_plane.get_pending(counted, me, thing),
        "DescribeJobExecution": lambda: data_plane.describe(counted, me, thing, job_id, True, None),
        "UpdateJobExecution": lambda: data_plane.update(
            counted,
            me,
            thing,
            job_id,
            UpdateJobExecutionRequest(status="IN_PROGRESS", expectedVersion=1, includeJobExecutionState=True),
        ),
        "StartNextPendingJobExecution": lambda: data_plane.start_next(
            counted, me, thing, StartNextPendingJobExecutionRequest(stepTimeoutInMinutes=5)
        ),
    }
    trips = round_trips_per_call(counter, calls)
    counted.close()
    counter.close()
    detail = ", ".join(f"{k} {v}" for k, v in trips.items())
    return Figure("14. round trips per AWS data-plane call", detail, "1", max(trips.values()), "1")


def latency(data: Dataset) -> list[Figure]:
    use_container_database(data.url)
    job_id = f"aws-warm-{uuid.uuid4().hex[:6]}"
    jobs_create.create(data.db, SMALL, "bench", JobCreate(job_id=job_id, document_type="x", target_all=True))
    i = data.take(1, SMALL)[0]
    me, thing = token(SMALL, i), device_id(i)
    native_path = f"/device/v1/jobs/{job_id}/execution"
    aws_path = f"/iot-jobs-data/things/{thing}/jobs"
    handler_call("PUT", native_path, me, {"status": "IN_PROGRESS"})()
    samples = interleaved(
        {
            "native pending": handler_call("GET", "/device/v1/jobs/pending", me),
            "GetPendingJobExecutions": handler_call("GET", aws_path, me),
            "native update": handler_call(
                "PUT", native_path, me, {"status": "IN_PROGRESS", "status_details": {"p": "1"}}
            ),
            "UpdateJobExecution": handler_call(
                "POST", f"{aws_path}/{job_id}", me, {"status": "IN_PROGRESS", "statusDetails": {"p": "1"}}
            ),
        },
        data.reps,
    )
    return [
        Figure(
            "14. warm handler latency: GetPendingJobExecutions",
            ms(samples["GetPendingJobExecutions"]),
            f"native pending: {ms(samples['native pending'])}",
            p50_ratio(samples["GetPendingJobExecutions"], samples["native pending"]),
            "<= 1.1",
        ),
        Figure(
            "14. warm handler latency: UpdateJobExecution (progress)",
            ms(samples["UpdateJobExecution"]),
            f"native update: {ms(samples['native update'])}",
            p50_ratio(samples["UpdateJobExecution"], samples["native update"]),
            "report",
        ),
    ]
