"""The device registry: register devices (each with a new token, credentials.py), list, read,
update their attributes, delete.

Every call runs scoped to the operator's tenant (jobs.tenant_id), which row-level security
enforces, in one transaction.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import Any, NamedTuple

from psycopg.types.json import Jsonb

from jobs_core.domain import notifications, paging, targets
from jobs_core.domain.credentials import new_token, token_hash
from jobs_core.domain.fleet_models import (
    MAX_ATTRIBUTES,
    DeviceCreate,
    DeviceDeleted,
    DeviceDetail,
    DeviceSummary,
    DeviceUpdate,
    TokenState,
)
from jobs_core.domain.models import DEVICE_ID_PATTERN, TENANT_PATTERN
from jobs_core.domain.statemachine import Actor, ExecutionStatus, sources
from jobs_core.domain.targets import FLEET_CHANGE, FLEET_LOCK
from jobs_core.errors import Conflict, InvalidRequest, NotFound
from jobs_core.store.db import Database

ID_RULE = "1-128 of A-Z a-z 0-9 : _ - (AWS IoT's thing name rule)"
TENANT_RULE = "1-128 of A-Z a-z 0-9 _ . : @ -, starting with a letter or a digit"
TENANT = "current_setting('jobs.tenant_id', true)"


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


# One statement, whatever the batch: the devices that are not registered yet, and a token for
# each of them that gets one (a thing created through the AWS door gets none). The devices come as
# one JSON array (cheaper to send than arrays of values), the answer is one row: what it
# registered, and when.
REGISTER = f"""
WITH given AS (
    SELECT * FROM jsonb_to_recordset(%(devices)s::jsonb) AS g(device_id text, token_hash text, attributes jsonb)
), registered AS (
    INSERT INTO device_state (tenant_id, device_id, attributes)
    SELECT {TENANT}, device_id, attributes FROM given
    ON CONFLICT DO NOTHING
    RETURNING device_id
), tokens AS (
    INSERT INTO device_tokens (token_hash, tenant_id, device_id)
    SELECT g.token_hash, {TENANT}, g.device_id FROM given g JOIN registered r USING (device_id)
    WHERE g.token_hash IS NOT NULL
)
SELECT ARRAY(SELECT device_id FROM registered) AS registered, now() AS created_at
"""


class Registered(NamedTuple):
    tokens: dict[str, str | None]  # each device's new token, by id, in the order given
    created_at: datetime


def register_many(
    db: Database, tenant_id: str, devices: Iterable[DeviceCreate], *, with_tokens: bool = True
) -> Registered:
    """Register devices in one transaction: all of them, or (an id listed twice or registered
    already) none, and the error names it. Each gets a new token (shown once, stored only as a
    hash), unless `with_tokens` is off."""
    given = list(devices)
    ids = [d.device_id for d in given]
    twice = [device_id for device_id, n in Counter(ids).items() if n > 1]  # the ids are checked by the model
    if twice:
        raise InvalidRequest(f"listed more than once: {', '.join(twice[:5])}")
    tokens = {device_id: new_token() if with_tokens else None for device_id in ids}
    rows = [
        {
            "device_id": d.device_id,
            "token_hash": token_hash(t) if (t := tokens[d.device_id]) else None,
            "attributes": d.attributes,
        }
        for d in given
    ]
    params = {"devices": Jsonb(rows)}
    following = targets.registered(ids)
    with db.transaction(tenant_id=tenant_id, pipeline=False) as conn:
        conn.execute(targets.TARGET_SHARED, following)
        row = conn.execute(REGISTER, params).fetchone()
        assert row is not None
        taken = set(ids).difference(row["registered"])
        if taken:  # the exception rolls the transaction back: nothing is registered
            raise Conflict(f"already registered: {', '.join(sorted(taken)[:5])}")
        conn.execute(targets.GIVE, following)  # the continuous jobs of every device: in this transaction
    notifications.wake()
    return Registered(tokens, row["created_at"])


def register(db: Database, tenant_id: str, device_ids: Iterable[str]) -> dict[str, str]:
    """Register devices without attributes; their tokens by id (jobsctl's `device add` and `import`).
    An id that breaks the rule is named before anything is sent."""
    ids = list(device_ids)
    check_ids(tenant_id, ids)
    registered = register_many(db, tenant_id, [DeviceCreate.model_construct(device_id=i, attributes={}) for i in ids])
    return {device_id: token for device_id, token in registered.tokens.items() if token}


class DevicesPage(NamedTuple):
    devices: list[DeviceSummary]
    next_cursor: str | None


SUMMARY = "d.device_id, d.attributes, d.version, d.created_at"
LIST = f"""
SELECT {SUMMARY} FROM device_state d
WHERE d.tenant_id = {TENANT} AND d.device_id > %(after)s
  AND (%(attribute)s::jsonb IS NULL OR d.attributes @> %(attribute)s::jsonb)
ORDER BY d.device_id
LIMIT %(limit)s
"""
# A group's devices, by the membership index (tenant_id, group_id, device_id): in id order.
LIST_GROUP = f"""
SELECT {SUMMARY}
FROM device_group_members m
JOIN device_state d ON d.tenant_id = m.tenant_id AND d.device_id = m.device_id
WHERE m.tenant_id = {TENANT} AND m.group_id = %(group_id)s AND m.device_id > %(after)s
  AND (%(attribute)s::jsonb IS NULL OR d.attributes @> %(attribute)s::jsonb)
ORDER BY m.device_id
LIMIT %(limit)s
"""
GROUP_EXISTS = f"SELECT 1 FROM device_groups WHERE tenant_id = {TENANT} AND group_id = %(group_id)s"


def list_devices(
    db: Database,
    tenant_id: str,
    limit: int,
    cursor: str | None = None,
    group_id: str | None = None,
    attribute: tuple[str, str] | None = None,
) -> DevicesPage:
    """Up to `limit` devices by id, after `cursor`: in a group, with an attribute of that value."""
    params = {
        "after": paging.decode_cursor(cursor),
        "limit": limit + 1,  # one more than the page: whether there is a next one
        "group_id": group_id,
        "attribute": Jsonb(dict([attribute])) if attribute else None,
    }
    with db.transaction(tenant_id=tenant_id) as conn:
        page = conn.execute(LIST_GROUP if group_id is not None else LIST, params)
        group = conn.execute(GROUP_EXISTS, params) if group_id is not None else None
    if group is not None and group.fetchone() is None:
        raise NotFound(f"group {group_id} not found")
    rows = page.fetchall()
    devices = [DeviceSummary(**row) for row in rows[:limit]]
    more = len(rows) > limit
    return DevicesPage(devices, paging.encode_cursor(devices[-1].device_id) if more else None)


DETAIL = f"""
SELECT {SUMMARY},
       ARRAY(SELECT m.group_id FROM device_group_members m
             WHERE m.tenant_id = d.tenant_id AND m.device_id = d.device_id ORDER BY m.group_id LIMIT 100) AS groups,
       (SELECT t.issued_at FROM device_tokens t
        WHERE t.tenant_id = d.tenant_id AND t.device_id = d.device_id AND t.expires_at IS NULL) AS issued_at,
       (SELECT max(t.expires_at) FROM device_tokens t
        WHERE t.tenant_id = d.tenant_id AND t.device_id = d.device_id AND t.expires_at > now()) AS previous_valid_until
FROM device_state d
WHERE d.tenant_id = {TENANT} AND d.device_id = %(device_id)s
"""


def _detail(row: dict[str, Any]) -> DeviceDetail:
    token = TokenState(issued_at=row.pop("issued_at"), previous_valid_until=row.pop("previous_valid_until"))
    return DeviceDetail(**row, token=token)


def describe(db: Database, tenant_id: str, device_id: str) -> DeviceDetail:
    """The device's record, its groups and its tokens' state: never a token or a hash."""
    with db.transaction(tenant_id=tenant_id) as conn:
        found = conn.execute(DETAIL, {"device_id": device_id})
    row = found.fetchone()
    if row is None:
        raise NotFound(f"device {device_id} not found")
    return _detail(row)


# Attributes merged (a null value removes one), or with `replace` set to exactly those given (AWS's
# UpdateThing without merge); at most MAX_ATTRIBUTES after it, and only at the version the caller
# saw when it names one.
MERGED = "CASE WHEN %(replace)s THEN %(set)s::jsonb ELSE (d.attributes || %(set)s::jsonb) - %(remove)s::text[] END"
UPDATE = f"""
UPDATE device_state d SET attributes = {MERGED}, version = d.version + 1
WHERE d.tenant_id = {TENANT} AND d.device_id = %(device_id)s
  AND (%(version)s::bigint IS NULL OR d.version = %(version)s::bigint)
  AND (SELECT count(*) FROM jsonb_object_keys({MERGED})) <= %(max)s
RETURNING device_id
"""
FOUND = f"""
SELECT d.version, (SELECT count(*) FROM jsonb_object_keys({MERGED})) AS merged
FROM device_state d WHERE d.tenant_id = {TENANT} AND d.device_id = %(device_id)s
"""


def update(
    db: Database, tenant_id: str, device_id: str, request: DeviceUpdate, *, replace: bool = False
) -> DeviceDetail:
    """Merge the attributes given into the device's (a null value removes one), or with `replace`
    make them the device's attributes; 409 when the version given is not the device's."""
    changes = request.attributes
    params = {
        "device_id": device_id,
        "set": Jsonb({name: value for name, value in changes.items() if value is not None}),
        "remove": [name for name, value in changes.items() if value is None],
        "replace": replace,
        "version": request.version,
        "max": MAX_ATTRIBUTES,
    }
    with db.transaction(tenant_id=tenant_id) as conn:
        updated = conn.execute(UPDATE, params)
        found = conn.execute(FOUND, params)
        detail = conn.execute(DETAIL, params)
    if updated.fetchone() is not None:
        return _detail(detail.fetchone() or {})
    row = found.fetchone()
    if row is None:
        raise NotFound(f"device {device_id} not found")
    if request.version is not None and request.version != row["version"]:
        raise Conflict(f"version {request.version} is stale: the device is at {row['version']}")
    raise InvalidRequest(f"a device has at most {MAX_ATTRIBUTES} attributes: this would make {row['merged']}")


# Deleting a device, in one transaction: each of its executions not yet terminal becomes REMOVED
# (the count triggers follow, and its jobs complete if that was their last active execution), then
# its registry row goes, and with it its tokens (it cannot call from this commit on) and its
# memberships (the groups' counts follow). Its row is locked first, so that its version cannot move
# in between; every statement acts only while the device is at the version given (when one is):
# at another, nothing changes. Executions are locked before job rows, the order every writer takes.
OF_DEVICE = f"""
EXISTS (SELECT 1 FROM device_state d WHERE d.tenant_id = {TENANT} AND d.device_id = %(device_id)s
        AND (%(version)s::bigint IS NULL OR d.version = %(version)s::bigint))
"""
LOCK = f"SELECT version FROM device_state WHERE tenant_id = {TENANT} AND device_id = %(device_id)s FOR UPDATE"
REMOVE = f"""
UPDATE job_executions e
SET status = %(removed)s, status_details = %(details)s, execution_number = e.execution_number + 1,
    last_updated_at = now(), timeout_at = NULL, sweep_at = NULL
WHERE e.tenant_id = {TENANT} AND e.device_id = %(device_id)s AND e.status = ANY(%(sources)s) AND {OF_DEVICE}
"""
COMPLETE = f"""
SELECT complete_finished_jobs(array_agg(e.tenant_id), array_agg(e.job_id))
FROM job_executions e
WHERE e.tenant_id = {TENANT} AND e.device_id = %(device_id)s AND e.status = %(removed)s AND {OF_DEVICE}
"""
DELETE = f"""
DELETE FROM device_state
WHERE tenant_id = {TENANT} AND device_id = %(device_id)s
  AND (%(version)s::bigint IS NULL OR version = %(version)s::bigint)
RETURNING device_id
"""
DEFAULT_DELETE_REASON = "device deleted"


def delete(
    db: Database, tenant_id: str, device_id: str, reason: str | None = None, *, version: int | None = None
) -> DeviceDeleted:
    """Take the device out of the fleet (at `version`, when given: else 409 and nothing changes)."""
    params = {
        "device_id": device_id,
        "version": version,
        "removed": str(ExecutionStatus.REMOVED),
        "sources": sources(ExecutionStatus.REMOVED, Actor.FLEET),
        "details": Jsonb({"reason": reason or DEFAULT_DELETE_REASON}),
        "fleet_lock": FLEET_LOCK,
    }
    with db.transaction(tenant_id=tenant_id) as conn:
        conn.execute(FLEET_CHANGE, params)  # a fan-out running now cannot give it an execution
        found = conn.execute(LOCK, params)
        removed = conn.execute(REMOVE, params)
        conn.execute(COMPLETE, params)
        deleted = conn.execute(DELETE, params)
    if deleted.fetchone() is not None:
        return DeviceDeleted(device_id=device_id, removed_executions=removed.rowcount)
    row = found.fetchone()
    if row is None:
        raise NotFound(f"device {device_id} not found")
    raise Conflict(f"version {version} is stale: the device is at {row['version']}")


def attribute_filter(text: str | None) -> tuple[str, str] | None:
    """`name:value` (the name ends at the first colon) as a filter; 400 when it is not one."""
    if text is None:
        return None
    name, colon, value = text.partition(":")
    if not colon or not name:
        raise InvalidRequest("attribute: give name:value")
    return name, value
