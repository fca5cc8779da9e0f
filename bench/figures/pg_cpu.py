"""15. PostgreSQL CPU per device call: the backend's CPU time (from /proc, as figure 8 reads it)
over many calls of each kind through the layer, against a SELECT 1 round trip's and a bare
one-row UPDATE's (of a row like an execution's: a status, a jsonb, a version, a time) in the same
run. Calls: a poll with nothing pending, a poll with 10 pending, a claim, a progress update, a
finish, each on its own device of the big tenant. Also the floor of any authenticated call sent
unprepared (as the request path must be, behind a pooler): the registry row by its token hash,
alone, in one plain statement."""

from __future__ import annotations

from collections.abc import Callable

from bench.dataset import BIG, Dataset, device_id, new_group, token
from bench.harness import Figure
from bench.instruments import process_cpu_s
from jobs_core.domain import executions, jobs_create
from jobs_core.domain.credentials import lookup_key
from jobs_core.domain.job_settings import JobCreate
from jobs_core.domain.models import ExecutionUpdate
from jobs_core.store.db import Database

LIKE_AN_EXECUTION = """
CREATE TABLE IF NOT EXISTS bench_execution_like (
    id integer PRIMARY KEY, status text NOT NULL, status_details jsonb, execution_number bigint NOT NULL,
    last_updated_at timestamptz NOT NULL
);
INSERT INTO bench_execution_like VALUES (1, 'IN_PROGRESS', '{"p": 1}', 1, now()) ON CONFLICT DO NOTHING;
GRANT SELECT, UPDATE ON bench_execution_like TO jobs_runtime;
"""
BY_HASH = "SELECT tenant_id, device_id FROM device_tokens WHERE token_hash = %s"
BARE_UPDATE = """
UPDATE bench_execution_like SET status_details = '{"p": 2}', execution_number = execution_number + 1,
       last_updated_at = now()
WHERE id = 1
"""


def backend_cpu_ms(db: Database, calls: list[Callable[[], object]]) -> float | None:
    """The backend's CPU per call, in milliseconds, over these calls."""
    pid = db.connection().info.backend_pid
    before = process_cpu_s(pid)
    for call in calls:
        call()
    after = process_cpu_s(pid)
    if before is None or after is None:
        return None
    return (after - before) * 1000 / len(calls)


def _update(db: Database, me: str, change: ExecutionUpdate) -> Callable[[], object]:
    return lambda: executions.update(db, me, "cpu-work", change)


def run(data: Dataset) -> list[Figure]:
    n = 300 if data.quick else 3000
    data.admin.execute(LIKE_AN_EXECUTION)
    devices = data.take(n + 1)
    idle, busy, workers = devices[0], devices[1], devices[1:]
    for k in range(10):  # ten pending for one device
        ten = JobCreate(job_id=f"cpu-ten-{k}", document_type="x", target_device_id=device_id(busy))
        jobs_create.create(data.db, BIG, "bench", ten)
    group = "cpu-workers"
    new_group(data.admin, BIG, group)
    data.admin.execute(
        "INSERT INTO device_group_members (tenant_id, group_id, device_id) SELECT %s, %s, unnest(%s::text[])",
        [BIG, group, [device_id(i) for i in workers]],
    )
    jobs_create.create(data.db, BIG, "bench", JobCreate(job_id="cpu-work", document_type="x", target_group_id=group))
    data.admin.execute("VACUUM ANALYZE job_executions")
    db = Database(lambda refresh: data.url)
    conn = db.connection()
    quiet = token(BIG, idle)
    loaded = token(BIG, busy)
    assert len(executions.pending(db, loaded).jobs) == 10
    assert not [j for j in executions.pending(db, quiet).jobs if j.job_id.startswith("cpu-")]
    assert conn.execute(BY_HASH, [lookup_key(quiet)]).fetchone() is not None
    cpu = {
        "SELECT 1": backend_cpu_ms(db, [lambda: conn.execute("SELECT 1").fetchone()] * n),
        "bare UPDATE": backend_cpu_ms(db, [lambda: conn.execute(BARE_UPDATE)] * n),
        "token lookup alone": backend_cpu_ms(db, [lambda: conn.execute(BY_HASH, [lookup_key(quiet)]).fetchone()] * n),
        "poll, nothing pending": backend_cpu_ms(db, [lambda: executions.pending(db, quiet)] * n),
        "poll, 10 pending": backend_cpu_ms(db, [lambda: executions.pending(db, loaded)] * n),
    }
    for name, change in (
        ("claim", ExecutionUpdate(status="IN_PROGRESS")),
        ("progress", ExecutionUpdate(status="IN_PROGRESS", status_details={"p": 50})),
        ("finish", ExecutionUpdate(status="SUCCEEDED")),
    ):
        cpu[name] = backend_cpu_ms(db, [_update(db, token(BIG, i), change) for i in workers[:n]])
    db.close()

    def figure(name: str, baseline: str, goal: str) -> Figure:
        value, base = cpu[name], cpu[baseline]
        return Figure(
            f"15. PostgreSQL CPU per call: {name}, {data.devices:,}-device tenant",
            "n/a" if value is None else f"{value:.3f} ms",
            f"{baseline}: " + ("n/a" if base is None else f"{base:.3f} ms"),
            value / base if value is not None and base else None,
            goal,
        )

    return [
        figure("token lookup alone", "SELECT 1", "none: the floor of a call"),
        figure("poll, nothing pending", "SELECT 1", "<= 2"),
        figure("poll, 10 pending", "SELECT 1", "<= 2"),
        figure("claim", "bare UPDATE", "<= 1.5"),
        figure("progress", "bare UPDATE", "<= 1.5"),
        figure("finish", "bare UPDATE", "<= 1.5"),
    ]
