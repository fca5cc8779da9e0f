"""Fixtures: a fresh database per test session (DATABASE_URL's server, or the embedded one),
migrated and dropped at the end; each test works in tenants of its own.

Tests live by what they need: unit/ (no database), integration/ (real PostgreSQL, handlers
in-process), e2e/ (the local server and the tools in processes of their own, over HTTP). Each
folder's tests carry the marker of its name (`pytest -m unit`); `make test` runs them all."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from jobs_core.domain import devices, jobs_create
from jobs_core.domain.job_settings import JobCreate
from jobs_core.domain.models import JobCreated
from jobs_core.settings import settings
from jobs_core.store.db import Database, use_database
from jobs_core.store.migrate import migrate
from jobs_local import devdb
from jobs_local.devdb import ROOT
from jobs_local.pooler import free_port, pooled
from tests.factories import POOLED, Admin, CreateJob, Register, scratch_database

FOLDERS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        folder = item.path.parent.name
        if folder in FOLDERS:
            item.add_marker(getattr(pytest.mark, folder))


@pytest.fixture(scope="session")
def server_url() -> str:
    """The PostgreSQL server the tests use: DATABASE_URL, or the embedded server."""
    return devdb.database_url()


@pytest.fixture(scope="session")
def owner_url(server_url: str) -> Iterator[str]:
    """The session's scratch database, migrated, straight to the server (the owner's way in)."""
    with scratch_database(server_url) as url:
        migrate(url)
        yield url


@pytest.fixture(scope="session")
def database_url(owner_url: str) -> Iterator[str]:
    """What the handlers, the local server and the tools connect to: the scratch database, through
    a PgBouncer in transaction mode (5 server connections) when JOBS_TEST_POOLED=1 (`make
    test-pooled`), as RDS Proxy stands in front of Aurora."""
    with pooled(owner_url) if POOLED else nullcontext(owner_url) as url:
        saved = os.environ.get("DATABASE_URL")
        os.environ["DATABASE_URL"] = url  # what the handlers' settings read
        settings.cache_clear()
        use_database(None)
        yield url
        container = use_database(None)
        if container is not None:
            container.close()
        settings.cache_clear()
        if saved is None:
            os.environ.pop("DATABASE_URL", None)
        else:
            os.environ["DATABASE_URL"] = saved


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """A container's database handle, as the handlers get it (the runtime role)."""
    database = Database(lambda refresh: database_url)
    yield database
    database.close()


@pytest.fixture
def admin(owner_url: str) -> Iterator[Admin]:
    """The owner (superuser) connection, to look behind the API's back."""
    with psycopg.connect(owner_url, autocommit=True, row_factory=dict_row) as conn:
        yield conn


@pytest.fixture
def tenant() -> str:
    return f"tenant-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def other_tenant() -> str:
    return f"tenant-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def register(db: Database) -> Register:
    def _register(tenant_id: str, n: int = 1, prefix: str = "dev") -> dict[str, str]:
        return devices.register(db, tenant_id, [f"{prefix}-{i:04d}" for i in range(n)])

    return _register


@pytest.fixture
def create_job(db: Database) -> CreateJob:
    def _create(tenant_id: str, **fields: Any) -> JobCreated:
        fields.setdefault("document_type", "firmware")
        if not any(k in fields for k in ("target_device_id", "target_group_id", "target_all")):
            fields["target_all"] = True
        return jobs_create.create(db, tenant_id, "tester", JobCreate(**fields))

    return _create


@pytest.fixture(scope="session")
def env(database_url: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": database_url}


@contextmanager
def local_server(env: dict[str, str], log: Path) -> Iterator[str]:
    """The local server, as `make run` starts it, in a process of its own; yields its URL. Its
    output goes to a file: an unread pipe fills up and stops the server mid-request."""
    port = free_port()
    terminal = log.with_suffix(".terminal")
    # its broker and S3, on ports of their own
    env = {"MQTT_PORT": str(free_port()), "S3_PORT": str(free_port()), **env}
    with terminal.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "jobs_local.server", "--port", str(port), "--log", str(log)],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                urllib.request.urlopen(url + "/openapi.json", timeout=1).close()  # noqa: S310
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    shown = terminal.read_text() + (log.read_text()[-4000:] if log.exists() else "")
                    raise RuntimeError(f"the local server did not start:\n{shown}") from None
                time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(10)
