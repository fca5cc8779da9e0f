"""Fixtures: a fresh database per test session (DATABASE_URL's server, or the embedded one),
migrated and dropped at the end; each test works in tenants of its own."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from psycopg.rows import DictRow, dict_row

import jobs_core.db
from jobs_core import devices, jobs
from jobs_core.db import Database
from jobs_core.migrate import migrate
from jobs_core.models import JobCreate, JobCreated
from jobs_core.settings import settings
from jobs_local import devdb
from jobs_local.devdb import ROOT


@pytest.fixture(scope="session")
def server_url() -> str:
    """The PostgreSQL server the tests use: DATABASE_URL, or the embedded server."""
    return devdb.database_url()


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    name = f"jobs_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_conninfo(server_url, dbname=name)
    migrate(url)
    saved = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = url  # what the handlers' settings read
    settings.cache_clear()
    jobs_core.db._database = None
    yield url
    if jobs_core.db._database is not None:
        jobs_core.db._database.close()
    jobs_core.db._database = None
    settings.cache_clear()
    if saved is None:
        os.environ.pop("DATABASE_URL", None)
    else:
        os.environ["DATABASE_URL"] = saved
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """A container's database handle, as the handlers get it (the runtime role)."""
    database = Database(lambda refresh: database_url)
    yield database
    database.close()


@pytest.fixture
def admin(database_url: str) -> Iterator[psycopg.Connection[DictRow]]:
    """The owner (superuser) connection, to look behind the API's back."""
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        yield conn


@pytest.fixture
def tenant() -> str:
    return f"tenant-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def other_tenant() -> str:
    return f"tenant-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def register(db: Database) -> Callable[..., dict[str, str]]:
    """register(tenant, n=1, prefix="dev") -> {device_id: token}"""

    def _register(tenant_id: str, n: int = 1, prefix: str = "dev") -> dict[str, str]:
        return devices.register(db, tenant_id, [f"{prefix}-{i:04d}" for i in range(n)])

    return _register


@pytest.fixture
def create_job(db: Database) -> Callable[..., JobCreated]:
    """create_job(tenant, target_all=True, ...) through the operator logic."""

    def _create(tenant_id: str, **fields: Any) -> JobCreated:
        fields.setdefault("document_type", "firmware")
        if not any(k in fields for k in ("target_device_id", "target_group_id", "target_all")):
            fields["target_all"] = True
        return jobs.create(db, tenant_id, "tester", JobCreate(**fields))

    return _create


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def env(database_url: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": database_url}


@contextmanager
def local_server(env: dict[str, str], log: Path) -> Iterator[str]:
    """The local server, as `make run` starts it, in a process of its own; yields its URL. Its
    output goes to a file: an unread pipe fills up and stops the server mid-request."""
    port = free_port()
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "jobs_local.server", "--port", str(port)],
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
                    raise RuntimeError(f"the local server did not start:\n{log.read_text()[-4000:]}") from None
                time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(10)


@pytest.fixture(scope="session")
def base_url(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with local_server(env, tmp_path_factory.mktemp("server") / "server.log") as url:
        yield url
