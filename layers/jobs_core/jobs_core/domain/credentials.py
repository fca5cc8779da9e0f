"""A device's credentials: provision tokens (256 random bits, stored only as their hash), and how
a device call authenticates by one."""

from __future__ import annotations

import hashlib
import secrets

from psycopg.rows import DictRow

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
