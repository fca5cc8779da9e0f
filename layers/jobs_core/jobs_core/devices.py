"""The device registry: provision tokens (stored only as hashes), groups, and device authentication."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections import Counter
from collections.abc import Iterable

from psycopg.rows import DictRow

from jobs_core.db import Database
from jobs_core.errors import Conflict, InvalidRequest, Unauthorized
from jobs_core.models import DEVICE_ID_PATTERN, TENANT_PATTERN
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


ID_RULE = "1-128 of A-Z a-z 0-9 : _ - (AWS IoT's thing name rule)"
TENANT_RULE = "1-128 of A-Z a-z 0-9 _ . : @ -, starting with a letter or a digit"
EXISTING = "SELECT device_id FROM device_state WHERE tenant_id = %(tenant_id)s AND device_id = ANY(%(ids)s)"


def check_ids(tenant_id: str, ids: list[str], what: str = "device id") -> None:
    """InvalidRequest naming the first id that breaks the rule, or is listed twice."""
    if not re.fullmatch(TENANT_PATTERN, tenant_id):
        raise InvalidRequest(f"not a tenant id: {tenant_id!r} ({TENANT_RULE})")
    for value in ids:
        if not re.fullmatch(DEVICE_ID_PATTERN, value):
            raise InvalidRequest(f"not a {what}: {value!r} ({ID_RULE})")
    twice = [value for value, n in Counter(ids).items() if n > 1]
    if twice:
        raise InvalidRequest(f"listed more than once: {', '.join(twice[:5])}")


def register(db: Database, tenant_id: str, device_ids: Iterable[str]) -> dict[str, str]:
    """Register devices in one transaction; returns each one's new token (shown once, never stored).
    An id that breaks the rule, is listed twice or is registered already: nothing is registered,
    and the error names it."""
    ids = list(device_ids)
    check_ids(tenant_id, ids)
    tokens = {device_id: new_token() for device_id in ids}
    with db.transaction(tenant_id=tenant_id, pipeline=False) as conn:
        taken = [row["device_id"] for row in conn.execute(EXISTING, {"tenant_id": tenant_id, "ids": ids})]
        if taken:
            raise Conflict(f"already registered: {', '.join(sorted(taken)[:5])}")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO device_state (tenant_id, device_id, token_hash) VALUES (%s, %s, %s)",
                [(tenant_id, device_id, token_hash(token)) for device_id, token in tokens.items()],
            )
    return tokens


def add_to_group(db: Database, tenant_id: str, group_id: str, device_ids: Iterable[str]) -> int:
    """Create a group or add devices to it (members must be registered devices of the tenant);
    returns how many were added (members already in it are not added again)."""
    ids = list(dict.fromkeys(device_ids))
    check_ids(tenant_id, [group_id], "group id")
    check_ids(tenant_id, ids)
    with db.transaction(tenant_id=tenant_id, pipeline=False) as conn:
        known = {row["device_id"] for row in conn.execute(EXISTING, {"tenant_id": tenant_id, "ids": ids})}
        unknown = [device_id for device_id in ids if device_id not in known]
        if unknown:
            raise InvalidRequest(f"not registered devices of {tenant_id}: {', '.join(unknown[:5])}")
        added = conn.execute(
            """
            INSERT INTO device_group_members (tenant_id, group_id, device_id)
            SELECT %(tenant_id)s, %(group_id)s, device_id FROM unnest(%(device_ids)s::text[]) AS device_id
            ON CONFLICT DO NOTHING
            """,
            {"tenant_id": tenant_id, "group_id": group_id, "device_ids": ids},
        )
    return added.rowcount
