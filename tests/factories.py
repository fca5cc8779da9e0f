"""What tests share besides fixtures: the fixtures' types, scratch databases, and the few changes
a test makes behind the API's back (as the owner), each written once."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg.rows import DictRow

from jobs_core.domain.models import JobCreated
from jobs_core.domain.statemachine import ExecutionStatus
from jobs_core.store.db import Database, use_database

# `make test-pooled`: the handlers, the local server and the tools connect through PgBouncer.
POOLED = os.environ.get("JOBS_TEST_POOLED") == "1"

Admin = psycopg.Connection[DictRow]


class Register(Protocol):
    """register(tenant, n=1, prefix="dev") -> {device_id: token}: devices dev-0000, dev-0001..."""

    def __call__(self, tenant_id: str, n: int = 1, prefix: str = "dev") -> dict[str, str]: ...


class CreateJob(Protocol):
    """create_job(tenant, **JobCreate fields) through the operator logic; every device by default."""

    def __call__(self, tenant_id: str, **fields: Any) -> JobCreated: ...


@contextmanager
def scratch_database(server_url: str, prefix: str = "jobs_test") -> Iterator[str]:
    """An empty database of its own on the test server, dropped afterwards; yields its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_conninfo(server_url, dbname=name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# Executions before the job row: the lock order of every writer (a device update, a cancel).
EXPIRE_EXECUTIONS = """
UPDATE job_executions SET sweep_at = now() - interval '1 second'  -- as the fan-out copies the job's expiry
WHERE tenant_id = %(tenant)s AND (%(job_id)s::text IS NULL OR job_id = %(job_id)s::text)
"""
EXPIRE_JOBS = """
UPDATE jobs SET expires_at = now() - interval '1 second'
WHERE tenant_id = %(tenant)s AND (%(job_id)s::text IS NULL OR job_id = %(job_id)s::text)
"""


def expire_job(conn: psycopg.Connection[Any], tenant: str, job_id: str | None = None) -> None:
    """Let a job (every job of the tenant when job_id is None) expire a moment ago."""
    conn.execute(EXPIRE_EXECUTIONS, {"tenant": tenant, "job_id": job_id})
    conn.execute(EXPIRE_JOBS, {"tenant": tenant, "job_id": job_id})


def execution_row(admin: Admin, tenant: str, job_id: str, device_id: str) -> dict[str, Any]:
    row = admin.execute(
        "SELECT * FROM job_executions WHERE tenant_id = %s AND job_id = %s AND device_id = %s",
        [tenant, job_id, device_id],
    ).fetchone()
    assert row is not None
    return row


def force_status(admin: Admin, tenant: str, job_id: str, device_id: str, status: ExecutionStatus) -> None:
    """Put an execution in a status without a transition, to test what follows from it."""
    admin.execute(
        "UPDATE job_executions SET status = %s WHERE tenant_id = %s AND job_id = %s AND device_id = %s",
        [status, tenant, job_id, device_id],
    )


def job_status(admin: Admin, tenant: str, job_id: str) -> str:
    row = admin.execute("SELECT status FROM jobs WHERE tenant_id = %s AND job_id = %s", [tenant, job_id]).fetchone()
    assert row is not None
    return str(row["status"])


@contextmanager
def container_database(db: Database) -> Iterator[Database]:
    """The handlers use db as their container's database for the block."""
    previous = use_database(db)
    try:
        yield db
    finally:
        use_database(previous)
