"""The device registry: provision tokens (stored only as hashes), groups, and device authentication."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable

from psycopg.rows import DictRow

from jobs_core.db import Database, scope_to_tenant
from jobs_core.errors import Unauthorized
from jobs_core.observability import logger

MAX_TOKEN_LENGTH = 256


def new_token() -> str:
    return secrets.token_urlsafe(32)  # 256 random bits


def token_hash(token: str) -> str:
    """A token is 256 random bits: a fast hash cannot be brute-forced, and lookups stay one probe."""
    return hashlib.sha256(token.encode()).hexdigest()


def lookup_key(token: str | None) -> str:
    """What a device call looks its token up by: the token's hash. A token that cannot be one
    of ours (tokens are URL-safe base64) hashes as the empty string, which matches no device."""
    if not token or len(token) > MAX_TOKEN_LENGTH or not token.isascii():
        token = ""
    return token_hash(token)


def authenticated(row: DictRow | None) -> DictRow:
    """A device call's row, once its token resolved to a device (tenant_id, device_id); else 401."""
    if row is None or row["tenant_id"] is None:
        raise Unauthorized("missing or unknown provision token")
    logger.append_keys(tenant_id=row["tenant_id"], device_id=row["device_id"])  # cleared per invocation
    return row


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
