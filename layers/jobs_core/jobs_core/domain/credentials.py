"""A device's credentials: provision tokens (256 random bits, stored only as their hash, in
device_tokens), how a device call authenticates by one, and what an operator does with them:
rotate (with an overlap) and revoke.

A device has at most one current token (expires_at NULL) and, during a rotation's overlap, the
one it replaced (expires_at in the future). A device call reads the token's row by its hash alone
(the primary key: one index read, however many tokens there are) and finds it valid or not by
its expires_at: the overlap ends by itself, no schedule has to run at that minute.
"""

from __future__ import annotations

import hashlib
import secrets

from psycopg.rows import DictRow

from jobs_core.domain.fleet_models import DeviceToken, TokenRevoked, TokenRotate
from jobs_core.errors import NotFound, Unauthorized
from jobs_core.observability import logger
from jobs_core.store.db import Database

MAX_TOKEN_LENGTH = 256


def new_token() -> str:
    """256 random bits, URL-safe base64; never starting with '-', which a command line would take
    for an option (`device_agent.py --token -Ab...`): drawn again in that case (1 in 64)."""
    while (token := secrets.token_urlsafe(32)).startswith("-"):
        pass
    return token


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


# Rotation and revocation lock the device's registry row first: two of them on one device take
# turns, and each sees what the other left.
LOCK_DEVICE = """
SELECT device_id FROM device_state
WHERE tenant_id = current_setting('jobs.tenant_id', true) AND device_id = %(device_id)s
FOR UPDATE
"""
OF_DEVICE = "tenant_id = current_setting('jobs.tenant_id', true) AND device_id = %(device_id)s"
# A rotation: the token an earlier rotation replaced stops now (at most two valid tokens); the
# current one keeps working previous_valid_minutes (0: stops now); the new one is current.
DROP_REPLACED = f"DELETE FROM device_tokens WHERE {OF_DEVICE} AND expires_at IS NOT NULL"
REPLACE_CURRENT = f"""
UPDATE device_tokens SET expires_at = now() + make_interval(mins => %(minutes)s)
WHERE {OF_DEVICE} AND expires_at IS NULL
"""
DROP_EXPIRED = f"DELETE FROM device_tokens WHERE {OF_DEVICE} AND expires_at <= now()"
ISSUE = """
INSERT INTO device_tokens (token_hash, tenant_id, device_id)
SELECT %(token_hash)s, d.tenant_id, d.device_id FROM device_state d
WHERE d.tenant_id = current_setting('jobs.tenant_id', true) AND d.device_id = %(device_id)s
RETURNING device_id
"""
REVOKE = f"DELETE FROM device_tokens WHERE {OF_DEVICE}"


def rotate(db: Database, tenant_id: str, device_id: str, request: TokenRotate) -> DeviceToken:
    """A new token for the device (shown this once); the one it replaces keeps working
    `previous_valid_minutes`. Also how a device without a token (revoked, or created through the
    AWS door) gets one."""
    token = new_token()
    params = {"device_id": device_id, "minutes": request.previous_valid_minutes, "token_hash": token_hash(token)}
    with db.transaction(tenant_id=tenant_id) as conn:
        conn.execute(LOCK_DEVICE, params)
        conn.execute(DROP_REPLACED, params)
        conn.execute(REPLACE_CURRENT, params)
        conn.execute(DROP_EXPIRED, params)
        issued = conn.execute(ISSUE, params)
    if issued.fetchone() is None:
        raise NotFound(f"device {device_id} not found")
    return DeviceToken(device_id=device_id, token=token)


def revoke(db: Database, tenant_id: str, device_id: str) -> TokenRevoked:
    """No token of the device works any more, from this transaction on, until a new one is issued."""
    params = {"device_id": device_id}
    with db.transaction(tenant_id=tenant_id) as conn:
        found = conn.execute(LOCK_DEVICE, params)
        revoked = conn.execute(REVOKE, params)
    if found.fetchone() is None:
        raise NotFound(f"device {device_id} not found")
    return TokenRevoked(device_id=device_id, revoked=revoked.rowcount)
