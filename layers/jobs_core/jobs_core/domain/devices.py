"""The device registry: registering devices, each with a new provision token (credentials.py)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from jobs_core.domain.credentials import new_token, token_hash
from jobs_core.domain.models import DEVICE_ID_PATTERN, TENANT_PATTERN
from jobs_core.errors import Conflict, InvalidRequest
from jobs_core.store.db import Database

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
