"""The schema, applied by one command: the versioned migrations (tables, indexes, constraints,
roles, policies: history, never edited), then the SQL functions of sql/, re-applied every time
(CREATE OR REPLACE), so the code of a function is read in one file, not reconstructed from
migrations.

Safe when two run at once: an advisory lock serialises whole runs (yoyo's own lock row does not
cover the creation of its bookkeeping tables, nor the functions). It is a transaction's lock, held
by a transaction open for the whole run, in which the functions are applied: nothing outlives the
run on a server connection, so it is safe through a transaction pooler too.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

import psycopg
from psycopg.conninfo import conninfo_to_dict
from yoyo import get_backend, read_migrations

MIGRATIONS = Path(__file__).parent / "migrations"
FUNCTIONS = Path(__file__).parent / "sql"
MIGRATE_LOCK = 0x10B5_0001


def _yoyo_uri(conninfo: str) -> str:
    # Every connection parameter goes through the query string: yoyo hands them to psycopg as is.
    params = {key: str(value) for key, value in conninfo_to_dict(conninfo).items() if value is not None}
    return "postgresql+psycopg:///?" + urlencode(params)


def function_files() -> list[Path]:
    return sorted(FUNCTIONS.glob("*.sql"))


def migrate(conninfo: str) -> list[str]:
    """Apply the pending migrations, then the SQL functions, as the connecting (owner) user;
    returns the ids of the migrations applied."""
    with psycopg.connect(conninfo, autocommit=True, prepare_threshold=None) as lock, lock.transaction():
        lock.execute("SELECT pg_advisory_xact_lock(%s)", [MIGRATE_LOCK])
        backend = get_backend(_yoyo_uri(conninfo))
        try:
            with backend.lock():
                pending = backend.to_apply(read_migrations(str(MIGRATIONS)))
                backend.apply_migrations(pending)
        finally:
            backend.connection.close()
        # All the functions or none, with the lock's transaction. The files' order does not
        # matter: bodies are checked when first called, as pg_dump does.
        lock.execute("SET LOCAL check_function_bodies = false")
        for path in function_files():
            lock.execute(path.read_bytes())
        return [migration.id for migration in pending]
