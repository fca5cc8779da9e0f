"""The benchmark's data: a database of its own, a big tenant (--devices devices, jobs of 10, 1k and
all of them), a small tenant of 10 devices, and noise tenants; and which devices each figure may
use, handed out so that no two figures touch the same device."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from jobs_core.domain import jobs_create
from jobs_core.domain.job_settings import JobCreate
from jobs_core.store.db import Database
from jobs_core.store.migrate import migrate

BIG, SMALL = "fleet-big", "fleet-small"
SMALL_DEVICES = 10
# The first 1,000 devices of the big tenant are in groups with jobs of their own (job-10, job-1000),
# the mix of figure 2's and 8's polls; devices handed out start after them.
GROUPED = 1000


def token(tenant: str, i: int) -> str:
    """Device i's provision token (stored hashed, as always)."""
    return f"{tenant}-tok-{i}"


def device_id(i: int) -> str:
    return f"dev-{i:07d}"


@contextmanager
def bench_database(server_url: str) -> Iterator[str]:
    name = f"jobs_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_conninfo(server_url, dbname=name)
    try:
        migrate(url)
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def register_fleet(admin: psycopg.Connection[Any], tenant: str, n: int) -> None:
    """n devices in one statement; device i's token is token(tenant, i)."""
    admin.execute(
        """
        WITH devices AS (
            INSERT INTO device_state (tenant_id, device_id)
            SELECT %(t)s, 'dev-' || lpad(i::text, 7, '0') FROM generate_series(0, %(n)s - 1) AS i
        )
        INSERT INTO device_tokens (token_hash, tenant_id, device_id)
        SELECT encode(sha256((%(t)s || '-tok-' || i)::bytea), 'hex'), %(t)s, 'dev-' || lpad(i::text, 7, '0')
        FROM generate_series(0, %(n)s - 1) AS i
        """,
        {"t": tenant, "n": n},
    )


def new_group(admin: psycopg.Connection[Any], tenant: str, group: str) -> None:
    """A group's row (its members are inserted after it, by the caller's own statement)."""
    admin.execute(
        "INSERT INTO device_groups (tenant_id, group_id) VALUES (%s, %s) ON CONFLICT DO NOTHING", [tenant, group]
    )


@dataclass
class Dataset:
    url: str
    admin: psycopg.Connection[Any]  # the owner, autocommit
    db: Database  # the operator's side (a long statement timeout: see build)
    devices: int  # in the big tenant
    quick: bool
    _next: dict[str, int] = field(default_factory=lambda: {BIG: GROUPED, SMALL: 0})

    @property
    def reps(self) -> int:
        return 100 if self.quick else 2000

    def take(self, n: int, tenant: str = BIG) -> list[int]:
        """n devices of the tenant that no other figure has, or has had."""
        first = self._next[tenant]
        size = self.devices if tenant == BIG else SMALL_DEVICES
        if first + n > size:
            raise RuntimeError(f"the {tenant} tenant has no {n} devices left (from {first} of {size})")
        self._next[tenant] = first + n
        return list(range(first, first + n))


def build(url: str, admin: psycopg.Connection[Any], devices: int, quick: bool) -> Dataset:
    register_fleet(admin, BIG, devices)
    register_fleet(admin, SMALL, SMALL_DEVICES)
    for noise in range(3):
        register_fleet(admin, f"noise-{noise}", max(10, devices // 10))
    # The operator's side: fan-outs of 100,000 rows, timed here, may take longer than the API's
    # statement timeout allows (see README); the bench measures their cost, not that limit.
    db = Database(lambda refresh: url, statement_timeout_ms=120_000)
    for size in (10, GROUPED):  # jobs of 10 and 1k executions in the big tenant, for the mix
        new_group(admin, BIG, f"first-{size}")
        admin.execute(
            "INSERT INTO device_group_members (tenant_id, group_id, device_id)"
            " SELECT tenant_id, %s, device_id FROM device_state WHERE tenant_id = %s ORDER BY device_id LIMIT %s",
            [f"first-{size}", BIG, size],
        )
        jobs_create.create(
            db, BIG, "bench", JobCreate(job_id=f"job-{size}", document_type="x", target_group_id=f"first-{size}")
        )
    jobs_create.create(db, BIG, "bench", JobCreate(job_id="big", document_type="x", target_all=True))
    for noise in range(3):
        jobs_create.create(db, f"noise-{noise}", "bench", JobCreate(document_type="x", target_all=True))
    admin.execute("VACUUM ANALYZE")
    return Dataset(url, admin, db, devices, quick)
