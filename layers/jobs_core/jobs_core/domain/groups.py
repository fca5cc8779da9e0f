"""Device groups: a named set of a tenant's registered devices, the target of a group job.

A group is a row of its own (device_groups: a description and its device_count, kept by triggers
on its memberships in the same transaction, sql/fleet.sql); its members are rows of
device_group_members. Every call runs scoped to the operator's tenant (jobs.tenant_id), which
row-level security enforces, in one transaction sent as one round trip.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import psycopg
from psycopg.rows import DictRow

from jobs_core.domain import notifications, paging, targets
from jobs_core.domain.devices import check_ids
from jobs_core.domain.fleet_models import GroupDeleted, GroupDetail, GroupMember, GroupMembersAdded
from jobs_core.errors import Conflict, InUse, InvalidRequest, NotFound
from jobs_core.store.db import Database

TENANT = "current_setting('jobs.tenant_id', true)"
DETAIL = "group_id, description, device_count, version, created_at"

# Create, or set the description of one that exists (xmax is 0 only in a row this statement made).
PUT = f"""
INSERT INTO device_groups AS g (tenant_id, group_id, description)
VALUES ({TENANT}, %(group_id)s, %(description)s)
ON CONFLICT (tenant_id, group_id) DO UPDATE SET description = excluded.description, version = g.version + 1
RETURNING {DETAIL}, (xmax = 0) AS created
"""
ENSURE = f"""
INSERT INTO device_groups (tenant_id, group_id) VALUES ({TENANT}, %(group_id)s)
ON CONFLICT (tenant_id, group_id) DO NOTHING
"""
GET = f"SELECT {DETAIL} FROM device_groups WHERE tenant_id = {TENANT} AND group_id = %(group_id)s"
LIST = f"""
SELECT {DETAIL} FROM device_groups
WHERE tenant_id = {TENANT} AND group_id > %(after)s AND starts_with(group_id, %(prefix)s)
ORDER BY group_id
LIMIT %(limit)s
"""
# A device's groups, by the membership index (tenant_id, device_id, group_id): in id order.
LIST_OF_DEVICE = f"""
SELECT g.group_id, g.description, g.device_count, g.version, g.created_at
FROM device_group_members m
JOIN device_groups g ON g.tenant_id = m.tenant_id AND g.group_id = m.group_id
WHERE m.tenant_id = {TENANT} AND m.device_id = %(device_id)s AND m.group_id > %(after)s
ORDER BY m.group_id
LIMIT %(limit)s
"""
# A group's memberships go with it (ON DELETE CASCADE); jobs that targeted it keep their executions.
DELETE = f"""
DELETE FROM device_groups
WHERE tenant_id = {TENANT} AND group_id = %(group_id)s
  AND (%(version)s::bigint IS NULL OR version = %(version)s::bigint)
  AND NOT EXISTS ({targets.FOLLOWERS})
RETURNING device_count
"""
# Create unless a group of that id exists, which is left as it is (AWS's CreateThingGroup).
CREATE = f"""
INSERT INTO device_groups (tenant_id, group_id, description) VALUES ({TENANT}, %(group_id)s, %(description)s)
ON CONFLICT (tenant_id, group_id) DO NOTHING
RETURNING group_id
"""

# Members: only registered devices of the tenant, in a group that exists; all of them or none.
ADD = f"""
INSERT INTO device_group_members (tenant_id, group_id, device_id)
SELECT g.tenant_id, g.group_id, d.device_id
FROM device_groups g
JOIN device_state d ON d.tenant_id = g.tenant_id AND d.device_id = ANY(%(device_ids)s)
WHERE g.tenant_id = {TENANT} AND g.group_id = %(group_id)s
  AND (SELECT count(*) FROM device_state k
       WHERE k.tenant_id = {TENANT} AND k.device_id = ANY(%(device_ids)s)) = cardinality(%(device_ids)s::text[])
ORDER BY d.device_id
ON CONFLICT DO NOTHING
"""
UNKNOWN = f"""
SELECT i.device_id FROM unnest(%(device_ids)s::text[]) AS i(device_id)
WHERE NOT EXISTS (SELECT 1 FROM device_state d WHERE d.tenant_id = {TENANT} AND d.device_id = i.device_id)
ORDER BY i.device_id
LIMIT 5
"""
REMOVE = f"""
DELETE FROM device_group_members
WHERE tenant_id = {TENANT} AND group_id = %(group_id)s AND device_id = %(device_id)s
"""
DEVICE_EXISTS = f"SELECT 1 FROM device_state WHERE tenant_id = {TENANT} AND device_id = %(device_id)s"


def put(db: Database, tenant_id: str, group_id: str, description: str | None) -> tuple[GroupDetail, bool]:
    """Create the group, or set its description; whether it was created."""
    with db.transaction(tenant_id=tenant_id) as conn:
        result = conn.execute(PUT, {"group_id": group_id, "description": description})
    row = result.fetchone() or {}
    created = row.pop("created")
    return GroupDetail(**row), created


def describe(db: Database, tenant_id: str, group_id: str) -> GroupDetail:
    with db.transaction(tenant_id=tenant_id) as conn:
        found = conn.execute(GET, {"group_id": group_id})
    row = found.fetchone()
    if row is None:
        raise NotFound(f"group {group_id} not found")
    return GroupDetail(**row)


class GroupsPage(NamedTuple):
    groups: list[GroupDetail]
    next_cursor: str | None


def _page(rows: list[DictRow], limit: int) -> GroupsPage:
    groups = [GroupDetail(**row) for row in rows[:limit]]
    return GroupsPage(groups, paging.encode_cursor(groups[-1].group_id) if len(rows) > limit else None)


def list_groups(db: Database, tenant_id: str, limit: int, cursor: str | None = None, prefix: str = "") -> GroupsPage:
    """Up to `limit` groups by id, after `cursor`; those whose id starts with `prefix`."""
    params = {"after": paging.decode_cursor(cursor), "limit": limit + 1, "prefix": prefix}
    with db.transaction(tenant_id=tenant_id) as conn:
        page = conn.execute(LIST, params)
    return _page(page.fetchall(), limit)


def list_for_device(db: Database, tenant_id: str, device_id: str, limit: int, cursor: str | None) -> GroupsPage:
    """The groups a device is in, by id, after `cursor`; 404 when there is no such device."""
    params = {"device_id": device_id, "after": paging.decode_cursor(cursor), "limit": limit + 1}
    with db.transaction(tenant_id=tenant_id) as conn:
        page = conn.execute(LIST_OF_DEVICE, params)
        device = conn.execute(DEVICE_EXISTS, params)
    if device.fetchone() is None:
        raise NotFound(f"device {device_id} not found")
    return _page(page.fetchall(), limit)


def create(db: Database, tenant_id: str, group_id: str, description: str | None) -> tuple[GroupDetail, bool]:
    """Create the group unless it exists (then it is not changed); the group as it is now, and
    whether this call created it."""
    check_ids(tenant_id, [group_id], "group id")
    params = {"group_id": group_id, "description": description}
    with db.transaction(tenant_id=tenant_id) as conn:
        inserted = conn.execute(CREATE, params)
        found = conn.execute(GET, params)
    row = found.fetchone()
    if row is None:  # deleted between the two statements
        raise NotFound(f"group {group_id} not found")
    return GroupDetail(**row), inserted.fetchone() is not None


def delete(db: Database, tenant_id: str, group_id: str, *, version: int | None = None) -> GroupDeleted:
    """Delete the group (at `version`, when given: else 409 and nothing changes); 409 too while a
    continuous job follows it (its devices would leave that job unseen)."""
    params = {"group_id": group_id, "version": version, **targets.joined(group_id, [])}
    with db.transaction(tenant_id=tenant_id) as conn:
        conn.execute(targets.TARGET_SHARED, params)
        followers = conn.execute(targets.FOLLOWERS, params)
        deleted = conn.execute(DELETE, params)
        found = conn.execute(GET, params)
    row = deleted.fetchone()
    if row is not None:
        return GroupDeleted(group_id=group_id, removed_members=row["device_count"])
    left = found.fetchone()
    if left is None:
        raise NotFound(f"group {group_id} not found")
    following = [r["job_id"] for r in followers.fetchall()]
    if following:
        raise InUse(f"continuous jobs follow this group: {', '.join(following)}; cancel them first")
    raise Conflict(f"version {version} is stale: the group is at {left['version']}")


def add_members(db: Database, tenant_id: str, group_id: str, device_ids: list[str]) -> GroupMembersAdded:
    """Add devices of the tenant to a group that exists: all of them, or (one is not registered)
    none, and the error names it. Members already in it are not added again."""
    ids = list(dict.fromkeys(device_ids))
    params = {"group_id": group_id, **targets.joined(group_id, ids)}
    try:
        with db.transaction(tenant_id=tenant_id) as conn:
            conn.execute(targets.TARGET_SHARED, params)
            added = conn.execute(ADD, params)
            conn.execute(targets.GIVE, params)  # the continuous jobs that follow the group: in this transaction
            unknown = conn.execute(UNKNOWN, params)
            group = conn.execute(GET, params)
    except psycopg.errors.ForeignKeyViolation:  # a device or the group was deleted meanwhile
        raise NotFound("a device or the group was deleted while they were being added: nothing was added") from None
    found = group.fetchone()
    if found is None:
        raise NotFound(f"group {group_id} not found")
    missing = [row["device_id"] for row in unknown.fetchall()]
    if missing:
        raise NotFound(f"not registered devices: {', '.join(missing)}")
    notifications.wake()  # the executions the continuous jobs gave
    return GroupMembersAdded(group_id=group_id, added=added.rowcount, device_count=found["device_count"])


def add_member(db: Database, tenant_id: str, group_id: str, device_id: str) -> GroupMember:
    added = add_members(db, tenant_id, group_id, [device_id])
    return GroupMember(group_id=group_id, device_id=device_id, changed=added.added > 0)


def remove_member(db: Database, tenant_id: str, group_id: str, device_id: str) -> GroupMember:
    params = {"group_id": group_id, **targets.left(group_id, device_id)}
    with db.transaction(tenant_id=tenant_id) as conn:
        conn.execute(targets.TARGET_SHARED, params)
        removed = conn.execute(REMOVE, params)
        conn.execute(targets.LEFT, params)  # what it had not started of the jobs that followed it there
        group = conn.execute(GET, params)
        device = conn.execute(DEVICE_EXISTS, params)
    if removed.rowcount:
        notifications.wake()  # what it had not started of the jobs that followed it there: REMOVED
        return GroupMember(group_id=group_id, device_id=device_id, changed=True)
    if group.fetchone() is None:
        raise NotFound(f"group {group_id} not found")
    if device.fetchone() is None:
        raise NotFound(f"device {device_id} not found")
    raise NotFound(f"device {device_id} is not a member of group {group_id}")


def add_to_group(db: Database, tenant_id: str, group_id: str, device_ids: Iterable[str]) -> int:
    """Create a group or add devices to it, for jobsctl (members must be registered devices of
    the tenant; an unknown one is named and nothing changes); how many were added."""
    ids = list(dict.fromkeys(device_ids))
    check_ids(tenant_id, [group_id], "group id")
    check_ids(tenant_id, ids)
    params = {"group_id": group_id, **targets.joined(group_id, ids)}
    with db.transaction(tenant_id=tenant_id, pipeline=False) as conn:
        conn.execute(targets.TARGET_SHARED, params)
        unknown = [row["device_id"] for row in conn.execute(UNKNOWN, params)]
        if unknown:
            raise InvalidRequest(f"not registered devices of {tenant_id}: {', '.join(unknown)}")
        conn.execute(ENSURE, params)
        added = conn.execute(ADD, params).rowcount
        conn.execute(targets.GIVE, params)
    notifications.wake()
    return added
