"""The device registry: provision tokens (stored only as hashes), groups, and device authentication."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable

from psycopg import Cursor
from psycopg.rows import DictRow

from jobs_core.api import logger
from jobs_core.db import Connection, Database, scope_to_tenant
from jobs_core.errors import Unauthorized

MAX_TOKEN_LENGTH = 256


def new_token() -> str:
    return secrets.token_urlsafe(32)  # 256 random bits


def token_hash(token: str) -> str:
    """A token is 256 random bits: a fast hash cannot be brute-forced, and lookups stay one probe."""
    return hashlib.sha256(token.encode()).hexdigest()


def authenticate(conn: Connection, token: str | None) -> Cursor[DictRow]:
    """Queue the statements that resolve a provision token to its device and scope the rest of the
    transaction to it (jobs.tenant_id, jobs.device_id). Read the result with `identity`."""
    if not token or len(token) > MAX_TOKEN_LENGTH or not token.isascii():
        token = ""  # matches no device (tokens are URL-safe base64); the caller gets 401 from identity()
    params = {"token_hash": token_hash(token)}
    # The registry row is readable by its token hash before the tenant is known (see the RLS policy).
    conn.execute("SELECT set_config('jobs.token_hash', %(token_hash)s, true)", params)
    return conn.execute(
        """
        SELECT set_config('jobs.tenant_id', tenant_id, true) AS tenant_id,
               set_config('jobs.device_id', device_id, true) AS device_id
        FROM device_state
        WHERE token_hash = %(token_hash)s
        """,
        params,
    )


def identity(authenticated: Cursor[DictRow]) -> tuple[str, str]:
    """(tenant_id, device_id) of an authenticated call, or 401."""
    row = authenticated.fetchone()
    if row is None:
        raise Unauthorized("missing or unknown provision token")
    logger.append_keys(tenant_id=row["tenant_id"], device_id=row["device_id"])  # cleared per invocation
    return row["tenant_id"], row["device_id"]


def register(db: Database, tenant_id: str, device_ids: Iterable[str]) -> dict[str, str]:
    """Register devices in one transaction; returns each one's new token (shown once, never stored)."""
    tokens = {device_id: new_token() for device_id in device_ids}
    with db.transaction() as conn:
        scope_to_tenant(conn, tenant_id)
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO device_state (tenant_id, device_id, token_hash) VALUES (%s, %s, %s)",
                [(tenant_id, device_id, token_hash(token)) for device_id, token in tokens.items()],
            )
    return tokens


def add_to_group(db: Database, tenant_id: str, group_id: str, device_ids: Iterable[str]) -> None:
    """Create a group or add devices to it (members must be registered devices of the tenant)."""
    with db.transaction() as conn:
        scope_to_tenant(conn, tenant_id)
        conn.execute(
            """
            INSERT INTO device_group_members (tenant_id, group_id, device_id)
            SELECT %(tenant_id)s, %(group_id)s, device_id FROM unnest(%(device_ids)s::text[]) AS device_id
            ON CONFLICT DO NOTHING
            """,
            {"tenant_id": tenant_id, "group_id": group_id, "device_ids": list(device_ids)},
        )
