"""Races, on real PostgreSQL: each thread is its own container, with its own connection."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any, cast

import psycopg
from psycopg.rows import DictRow

from bench.instruments import all_at_once as containers_at_once
from jobs_core.domain import executions
from jobs_core.domain.models import DeviceTarget, ExecutionUpdate
from jobs_core.domain.sweep import sweep
from jobs_core.errors import Conflict, InvalidRequest
from jobs_core.store.db import Database
from tests.factories import CreateJob, Register, expire_job


def all_at_once(n: int, database_url: str, work: Callable[[Database, int], Any]) -> list[Any]:
    """Run work(db, i) on n containers released together; returns results or exceptions."""
    return [outcome.result for outcome in containers_at_once(database_url, n, work)]


def test_of_32_simultaneous_claims_exactly_one_wins(
    database_url: str, tenant: str, register: Register, create_job: CreateJob, admin: psycopg.Connection[DictRow]
) -> None:
    token = register(tenant, 1)["dev-0000"]
    create_job(tenant, job_id="j")

    results = all_at_once(
        32,
        database_url,
        lambda db, i: executions.update(db, token, "j", ExecutionUpdate(status="IN_PROGRESS", execution_number=1)),
    )

    outcomes = Counter(type(r).__name__ for r in results)
    assert outcomes == {"ExecutionUpdated": 1, "Conflict": 31}, outcomes
    row = admin.execute("SELECT status, execution_number FROM job_executions WHERE tenant_id = %s", [tenant]).fetchone()
    assert row == {"status": "IN_PROGRESS", "execution_number": 2}


def test_every_accepted_update_bumps_the_version_exactly_once(
    database_url: str, tenant: str, register: Register, create_job: CreateJob, admin: psycopg.Connection[DictRow]
) -> None:
    token = register(tenant, 1)["dev-0000"]
    create_job(tenant, job_id="j")
    wanted = cast(list[DeviceTarget], ["IN_PROGRESS"] * 24 + ["SUCCEEDED"] * 4 + ["FAILED"] * 4)

    results = all_at_once(
        len(wanted), database_url, lambda db, i: executions.update(db, token, "j", ExecutionUpdate(status=wanted[i]))
    )

    accepted = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, Exception)]
    assert all(isinstance(r, InvalidRequest | Conflict) for r in refused), refused
    finishes = [r for r in accepted if r.status in ("SUCCEEDED", "FAILED")]
    assert len(finishes) <= 1  # a terminal execution never changes again
    row = admin.execute("SELECT status, execution_number FROM job_executions WHERE tenant_id = %s", [tenant]).fetchone()
    assert row is not None
    assert row["execution_number"] == 1 + len(accepted)
    assert sorted(r.execution_number for r in accepted) == list(range(2, 2 + len(accepted)))


def test_devices_finishing_a_job_together_complete_it_exactly_once(
    database_url: str, tenant: str, register: Register, create_job: CreateJob, admin: psycopg.Connection[DictRow]
) -> None:
    tokens = list(register(tenant, 48).values())
    create_job(tenant, job_id="j")
    for token in tokens:
        executions.update(Database(lambda refresh: database_url), token, "j", ExecutionUpdate(status="IN_PROGRESS"))

    results = all_at_once(
        len(tokens),
        database_url,
        lambda db, i: executions.update(db, tokens[i], "j", ExecutionUpdate(status="SUCCEEDED")),
    )

    assert not [r for r in results if isinstance(r, Exception)]
    job = admin.execute("SELECT status FROM jobs WHERE tenant_id = %s", [tenant]).fetchone()
    assert job == {"status": "COMPLETED"}
    counts = admin.execute(
        "SELECT sum(succeeded) AS succeeded, sum(queued + in_progress) AS active FROM job_execution_counts"
        " WHERE tenant_id = %s",
        [tenant],
    ).fetchone()
    assert counts == {"succeeded": 48, "active": 0}


def test_two_sweeps_at_once_time_out_each_execution_once(
    database_url: str, tenant: str, register: Register, create_job: CreateJob, admin: psycopg.Connection[DictRow]
) -> None:
    register(tenant, 300)
    create_job(tenant, job_id="j")
    expire_job(admin, tenant)

    results = all_at_once(2, database_url, lambda db, i: sweep(db, batch_size=50))

    assert sum(r.timed_out for r in results) >= 300  # the sweep is global: other tests' jobs may expire too
    statuses = admin.execute(
        "SELECT status, count(*) AS n, max(execution_number) AS version FROM job_executions"
        " WHERE tenant_id = %s GROUP BY status",
        [tenant],
    ).fetchall()
    assert statuses == [{"status": "TIMED_OUT", "n": 300, "version": 2}]
    assert admin.execute("SELECT status FROM jobs WHERE tenant_id = %s", [tenant]).fetchone() == {"status": "COMPLETED"}
