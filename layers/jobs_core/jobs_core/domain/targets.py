"""A job's targets: the devices a new job fans out to, resolved once, at creation (a snapshot).

Each target is a query of device ids in the operator's tenant (jobs.tenant_id), the CTE the
fan-out (jobs_create.CREATE) starts from.
"""

from __future__ import annotations

from jobs_core.domain.models import JobCreate
from jobs_core.errors import InvalidRequest, JobsError, NotFound

TARGET_DEVICE = """
SELECT device_id FROM device_state
WHERE tenant_id = current_setting('jobs.tenant_id', true) AND device_id = %(target_device_id)s
"""
TARGET_GROUP = """
SELECT m.device_id FROM device_group_members m
WHERE m.tenant_id = current_setting('jobs.tenant_id', true) AND m.group_id = %(target_group_id)s
"""
TARGET_ALL = """
SELECT device_id FROM device_state WHERE tenant_id = current_setting('jobs.tenant_id', true)
"""

# The class of the tenant's fleet lock (pg_advisory_xact_lock(FLEET_LOCK, hashtext(tenant))): a
# fan-out reads the targets under it shared, a change that takes a device out of the fleet holds
# it exclusively (devices.delete), so neither misses what the other did.
FLEET_LOCK = 0x10B5_F1EE
FLEET_READ = "SELECT pg_advisory_xact_lock_shared(%(fleet_lock)s, hashtext(current_setting('jobs.tenant_id', true)))"
FLEET_CHANGE = "SELECT pg_advisory_xact_lock(%(fleet_lock)s, hashtext(current_setting('jobs.tenant_id', true)))"


def query(request: JobCreate) -> str:
    """The device ids the job targets, as one SELECT."""
    if request.target_device_id is not None:
        return TARGET_DEVICE
    if request.target_group_id is not None:
        return TARGET_GROUP
    return TARGET_ALL


def none_found(request: JobCreate) -> JobsError:
    """Why a job's targets resolved to no device."""
    if request.target_device_id is not None:
        return NotFound(f"device {request.target_device_id} not found")
    if request.target_group_id is not None:
        return InvalidRequest(f"group {request.target_group_id} has no members")
    return InvalidRequest("the tenant has no devices")
