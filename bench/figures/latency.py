"""2. Warm handler latency: each device handler in-process (a warm container) against a bare
SELECT 1 on its connection, and the update also against a bare one-row UPDATE (a durable write:
its commit waits for the WAL flush). A call refused before the database shows what the handler
costs around it; the same calls through the layer alone show our part."""

from __future__ import annotations

import uuid

from bench.container import handler_call, use_container_database
from bench.dataset import SMALL, Dataset, token
from bench.harness import Figure, interleaved, ms, p50_ratio
from bench.instruments import RoundTripCounter
from jobs_core.domain import executions, jobs_create
from jobs_core.domain.job_settings import JobCreate
from jobs_core.domain.models import ExecutionUpdate

ONE_WAY_DELAY_S = 0.00025  # a 0.5 ms network round trip, about Lambda to RDS in one zone


def run(data: Dataset) -> list[Figure]:
    return measure(data, data.reps) + measure(data, data.reps // 4, delay_s=ONE_WAY_DELAY_S)


def measure(data: Dataset, reps: int, delay_s: float = 0.0) -> list[Figure]:
    relay = RoundTripCounter(data.url, delay_s=delay_s) if delay_s else None
    shared = use_container_database(relay.conninfo if relay else data.url)
    conn = shared.connection()
    data.admin.execute("CREATE TABLE IF NOT EXISTS bench_counter (id integer PRIMARY KEY, n integer NOT NULL)")
    data.admin.execute("INSERT INTO bench_counter VALUES (1, 0) ON CONFLICT DO NOTHING")
    data.admin.execute("GRANT SELECT, UPDATE ON bench_counter TO jobs_runtime")
    job_id = f"warm-{uuid.uuid4().hex[:6]}"
    jobs_create.create(data.db, SMALL, "bench", JobCreate(job_id=job_id, document_type="x", target_all=True))
    me = token(SMALL, data.take(1, SMALL)[0])
    path = f"/device/v1/jobs/{job_id}/execution"
    handler_call("PUT", path, me, {"status": "IN_PROGRESS"})()
    samples = interleaved(
        {
            "SELECT 1": lambda: conn.execute("SELECT 1").fetchone(),
            "UPDATE": lambda: conn.execute("UPDATE bench_counter SET n = n + 1 WHERE id = 1"),
            "pending": handler_call("GET", "/device/v1/jobs/pending", me),
            "describe": handler_call("GET", path, me),
            "update (progress)": handler_call("PUT", path, me, {"status": "IN_PROGRESS", "status_details": {"p": 1}}),
            "refused": handler_call("PUT", path, me, {"status": "BOGUS"}, expect=422),
            # The same calls through the layer alone: our SQL, psycopg and the models, no Powertools.
            "layer: pending": lambda: executions.pending(shared, me),
            "layer: describe": lambda: executions.describe(shared, me, job_id),
            "layer: update (progress)": lambda: executions.update(
                shared, me, job_id, ExecutionUpdate(status="IN_PROGRESS", status_details={"p": 1})
            ),
        },
        reps,
    )
    where = f", {delay_s * 2000:.1f} ms network round trip" if delay_s else ""
    select1 = samples["SELECT 1"]
    out = [
        Figure(
            f"2. warm handler latency: {name}{where}",
            ms(samples[name]),
            f"SELECT 1: {ms(select1)}",
            p50_ratio(samples[name], select1),
            "<= 2.0",
        )
        for name in ("pending", "describe", "update (progress)")
    ]
    out.append(
        Figure(
            f"2. warm handler latency: update (progress){where}, against a durable write",
            ms(samples["update (progress)"]),
            f"one-row UPDATE: {ms(samples['UPDATE'])}",
            p50_ratio(samples["update (progress)"], samples["UPDATE"]),
            "<= 2.0",
        )
    )
    if not delay_s:
        out.append(
            Figure(
                "2. (the handler around the database: a PUT refused before it, 422)",
                ms(samples["refused"]),
                f"SELECT 1: {ms(select1)}",
                p50_ratio(samples["refused"], select1),
                "what no SQL can save",
            )
        )
        # Reads against a SELECT 1, the update against the durable write it is.
        baselines = {"pending": "SELECT 1", "describe": "SELECT 1", "update (progress)": "UPDATE"}
        out += [
            Figure(
                f"2. (the layer alone, without the handler: {name})",
                ms(samples[f"layer: {name}"]),
                f"{'one-row UPDATE' if base == 'UPDATE' else base}: {ms(samples[base])}",
                p50_ratio(samples[f"layer: {name}"], samples[base]),
                "our part of figure 2",
            )
            for name, base in baselines.items()
        ]
    if relay:
        relay.close()
    return out
