"""4. The seed documents' own sequences against ours: resolve the token, then read, then write,
each a round trip, and on a terminal update COUNT(*) the job's unfinished executions (as the owner:
no row-level security there)."""

from __future__ import annotations

import time
from typing import Any

import psycopg
from psycopg.rows import dict_row

from bench.dataset import BIG, Dataset, token
from bench.harness import Figure, ms, p50_ratio, timed
from jobs_core.domain import credentials, executions
from jobs_core.domain.models import ExecutionUpdate


def seed_pending(conn: psycopg.Connection[Any], device_token: str) -> list[Any]:
    row = conn.execute(
        "SELECT tenant_id, device_id FROM device_tokens WHERE token_hash = %s", [credentials.token_hash(device_token)]
    ).fetchone()
    assert row is not None
    return conn.execute(
        """
        SELECT e.job_id, e.execution_number, e.queued_at, j.document_type, j.document_params, j.expires_at
        FROM job_executions e JOIN jobs j USING (tenant_id, job_id)
        WHERE e.tenant_id = %s AND e.device_id = %s AND e.status = 'QUEUED'
          AND (j.expires_at IS NULL OR j.expires_at > NOW())
        ORDER BY e.queued_at ASC LIMIT 10
        """,
        [row["tenant_id"], row["device_id"]],
    ).fetchall()


def seed_update(conn: psycopg.Connection[Any], device_token: str, job_id: str, status: str) -> None:
    row = conn.execute(
        "SELECT tenant_id, device_id FROM device_tokens WHERE token_hash = %s", [credentials.token_hash(device_token)]
    ).fetchone()
    assert row is not None
    tenant_id, dev = row["tenant_id"], row["device_id"]
    execution = conn.execute(
        "SELECT status, execution_number FROM job_executions WHERE tenant_id=%s AND job_id=%s AND device_id=%s",
        [tenant_id, job_id, dev],
    ).fetchone()
    assert execution is not None
    started = ", started_at = NOW()" if status == "IN_PROGRESS" else ""
    conn.execute(
        f"UPDATE job_executions SET status = %s, status_details = NULL, execution_number = execution_number + 1,"
        f" last_updated_at = NOW() {started} WHERE tenant_id=%s AND job_id=%s AND device_id=%s",
        [status, tenant_id, job_id, dev],
    )
    if status in ("SUCCEEDED", "FAILED", "TIMED_OUT", "REJECTED"):
        remaining = conn.execute(
            "SELECT COUNT(*) AS n FROM job_executions WHERE tenant_id=%s AND job_id=%s"
            " AND status NOT IN ('SUCCEEDED','FAILED','TIMED_OUT','REJECTED')",
            [tenant_id, job_id],
        ).fetchone()
        if remaining and remaining["n"] == 0:
            conn.execute(
                "UPDATE jobs SET status='COMPLETED', updated_at=NOW() WHERE tenant_id=%s AND job_id=%s",
                [tenant_id, job_id],
            )


def run(data: Dataset) -> list[Figure]:
    n = min(data.reps // 5, 200)
    seed_poller, our_poller, *finishers = data.take(2 + 2 * n)
    db = data.db
    with psycopg.connect(data.url, autocommit=True, row_factory=dict_row) as seed_conn:
        seed_poll = timed(lambda: seed_pending(seed_conn, token(BIG, seed_poller)), n)
        our_poll = timed(lambda: executions.pending(db, token(BIG, our_poller)), n)
        seed_finish, our_finish = [], []
        for i in range(n):
            seed_token, our_token = token(BIG, finishers[2 * i]), token(BIG, finishers[2 * i + 1])
            seed_update(seed_conn, seed_token, "big", "IN_PROGRESS")
            t0 = time.perf_counter()
            seed_update(seed_conn, seed_token, "big", "SUCCEEDED")
            seed_finish.append((time.perf_counter() - t0) * 1000)
            executions.update(db, our_token, "big", ExecutionUpdate(status="IN_PROGRESS"))
            t0 = time.perf_counter()
            executions.update(db, our_token, "big", ExecutionUpdate(status="SUCCEEDED"))
            our_finish.append((time.perf_counter() - t0) * 1000)
    return [
        Figure(
            f"4. seed's pending sequence against ours ({data.devices:,}-device tenant)",
            f"seed {ms(seed_poll)}",
            f"ours {ms(our_poll)}",
            p50_ratio(seed_poll, our_poll),
            "speedup",
        ),
        Figure(
            f"4. seed's finish sequence against ours ({data.devices:,}-device job)",
            f"seed {ms(seed_finish)}",
            f"ours {ms(our_finish)}",
            p50_ratio(seed_finish, our_finish),
            "speedup",
        ),
    ]
