"""Device groups: a named set of a tenant's registered devices, the target of a group job."""

from __future__ import annotations

from collections.abc import Iterable

from jobs_core.domain.devices import EXISTING, check_ids
from jobs_core.errors import InvalidRequest
from jobs_core.store.db import Database


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
