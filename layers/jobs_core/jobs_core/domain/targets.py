"""A job's targets, and the targets that follow the fleet.

A job targets one device, one group, every device of the tenant, or several devices and groups;
its targets are rows of job_targets. A SNAPSHOT job's devices are resolved once, at creation (the
CTE the fan-out, jobs_create.CREATE, starts from). A CONTINUOUS job's targets follow the fleet
while it runs: a device that joins one of its target groups (or is registered, for a job of every
device) gets its execution in the same transaction as that change (`JOIN`, `REGISTERED`), and one
that leaves every target of the job before its execution started gets it REMOVED (`LEFT`). Those
statements find the continuous jobs by one read of an index over their targets: the cost of a
membership change grows with the continuous jobs that target the group, never with its size.

Locks: a fan-out and a change of the fleet take turns where they could miss each other. A deletion
of a device holds the tenant's fleet lock exclusively, a fan-out shares it (FLEET_READ/CHANGE). A
continuous job's creation holds the lock of each of its targets exclusively, and a change of a
membership (or a registration, for `all`) shares the lock of the group it changes: the creation
sees the member committed before it, or the change sees the job. Transaction-level advisory locks,
in one order (sorted keys): nothing outlives the transaction, so they are safe through a pooler.
"""

from __future__ import annotations

from typing import NamedTuple

from psycopg.types.json import Jsonb

from jobs_core.domain.job_settings import JobCreate
from jobs_core.domain.statemachine import Actor, ExecutionStatus, JobStatus, sources
from jobs_core.errors import InvalidRequest, JobsError, NotFound

TENANT = "current_setting('jobs.tenant_id', true)"
TARGET_DEVICE = f"SELECT device_id FROM device_state WHERE tenant_id = {TENANT} AND device_id = %(target_device_id)s"
TARGET_GROUP = f"""
SELECT m.device_id FROM device_group_members m WHERE m.tenant_id = {TENANT} AND m.group_id = %(target_group_id)s
"""
TARGET_ALL = f"SELECT device_id FROM device_state WHERE tenant_id = {TENANT}"
# Several: each device once, whatever the overlaps.
TARGET_MANY = f"""
SELECT d.device_id FROM device_state d WHERE d.tenant_id = {TENANT} AND d.device_id = ANY(%(device_ids)s::text[])
UNION
SELECT m.device_id FROM device_group_members m WHERE m.tenant_id = {TENANT} AND m.group_id = ANY(%(group_ids)s::text[])
ORDER BY device_id  -- the executions are written in the order of their indexes, not the union's hash
"""
# What the job names that the tenant does not have: a job is not created for a part of its targets.
UNKNOWN = f"""
SELECT 'device ' || i.id AS target FROM unnest(%(device_ids)s::text[]) AS i(id)
WHERE NOT EXISTS (SELECT 1 FROM device_state d WHERE d.tenant_id = {TENANT} AND d.device_id = i.id)
UNION ALL
SELECT 'group ' || i.id FROM unnest(%(group_ids)s::text[]) AS i(id)
WHERE NOT EXISTS (SELECT 1 FROM device_groups g WHERE g.tenant_id = {TENANT} AND g.group_id = i.id)
"""
# The job's targets as rows (written with the job, in the fan-out's statement).
ROWS = """
SELECT 'device' AS kind, id FROM unnest(%(device_ids)s::text[]) AS id
UNION ALL SELECT 'group', id FROM unnest(%(group_ids)s::text[]) AS id
UNION ALL SELECT 'all', '' WHERE %(target_all)s
"""

FLEET_LOCK = 0x10B5_F1EE  # the class of every fleet lock: pg_advisory_xact_lock(FLEET_LOCK, key)
FLEET_READ = f"SELECT pg_advisory_xact_lock_shared(%(fleet_lock)s, hashtext({TENANT}))"
FLEET_CHANGE = f"SELECT pg_advisory_xact_lock(%(fleet_lock)s, hashtext({TENANT}))"
# A target's own lock: 'group:ID' or 'all'. A continuous creation holds its targets' exclusively.
TARGET_KEY = f"hashtext({TENANT} || '/' || %(target_key)s)"
TARGET_SHARED = f"SELECT pg_advisory_xact_lock_shared(%(fleet_lock)s, {TARGET_KEY})"
TARGETS_EXCLUSIVE = f"""
SELECT pg_advisory_xact_lock(%(fleet_lock)s, k.key)
FROM (SELECT DISTINCT hashtext({TENANT} || '/' || t) AS key FROM unnest(%(target_keys)s::text[]) AS t ORDER BY 1) k
"""


class Resolved(NamedTuple):
    device_ids: list[str]
    group_ids: list[str]
    all: bool

    @property
    def keys(self) -> list[str]:
        """The lock keys of what may gain members: its groups, or the whole fleet."""
        return [f"group:{g}" for g in self.group_ids] + (["all"] if self.all else [])


def resolved(request: JobCreate) -> Resolved:
    if request.targets is not None:
        ids = request.targets
        return Resolved(sorted(set(ids.device_ids)), sorted(set(ids.group_ids)), False)
    if request.target_device_id is not None:
        return Resolved([request.target_device_id], [], False)
    if request.target_group_id is not None:
        return Resolved([], [request.target_group_id], False)
    return Resolved([], [], True)


def query(request: JobCreate) -> str:
    """The device ids the job targets, as one SELECT."""
    if request.targets is not None:
        return TARGET_MANY
    if request.target_device_id is not None:
        return TARGET_DEVICE
    if request.target_group_id is not None:
        return TARGET_GROUP
    return TARGET_ALL


def not_found(unknown: list[str]) -> NotFound:
    """Targets the tenant does not have ('device ID', 'group ID'), named."""
    if len(unknown) == 1:
        return NotFound(f"{unknown[0]} not found")
    return NotFound(f"not found: {', '.join(sorted(unknown)[:5])}")


def none_found(request: JobCreate, unknown: list[str]) -> JobsError:
    """Why a job was not created: targets the tenant does not have, or none with a device."""
    if unknown:
        return not_found(unknown)
    if request.target_group_id is not None:
        return InvalidRequest(f"group {request.target_group_id} has no members")
    if request.targets is not None:
        return InvalidRequest("the targets have no devices")
    return InvalidRequest("the tenant has no devices")


# Continuous jobs that follow a target now: SCHEDULED or IN_PROGRESS, not stopped (an abort or its
# end_time), not expired. A device that becomes a target gets its execution UNRELEASED when the
# job holds it back (SCHEDULED, or paced: the schedule releases it at the rate, re-armed here), else
# QUEUED.
FOLLOWING = [str(JobStatus.SCHEDULED), str(JobStatus.IN_PROGRESS)]
U, Q = str(ExecutionStatus.UNRELEASED), str(ExecutionStatus.QUEUED)
FOLLOWED = f"""
SELECT j.tenant_id, j.job_id, j.expires_at,
       CASE WHEN j.status = '{JobStatus.SCHEDULED}' OR j.rate_per_minute IS NOT NULL THEN '{U}' ELSE '{Q}' END AS status
FROM job_targets t
JOIN jobs j ON j.tenant_id = t.tenant_id AND j.job_id = t.job_id
WHERE t.tenant_id = {TENANT} AND t.continuous AND t.kind = %(kind)s AND t.target_id = %(target_id)s
  AND j.status = ANY(%(following)s) AND j.stop_action IS NULL AND (j.expires_at IS NULL OR j.expires_at > now())
"""
# New executions for these devices (just added to the group, or registered), in the jobs that
# follow it; one a device and job at most (a device that had one, even ended, gets none again).
GIVE = f"""
WITH followed AS ({FOLLOWED}), newcomers AS MATERIALIZED (
    -- what this transaction made a target, and nothing else: each device probed once, by its key
    -- (a LATERAL with LIMIT: never a hash of the whole group, however large)
    SELECT d.device_id FROM unnest(%(device_ids)s::text[]) AS d(device_id)
    CROSS JOIN LATERAL (
        SELECT 1 FROM device_group_members m
        WHERE %(kind)s = 'group' AND m.tenant_id = {TENANT} AND m.group_id = %(target_id)s AND m.device_id = d.device_id
        UNION ALL
        SELECT 1 FROM device_state s WHERE %(kind)s = 'all' AND s.tenant_id = {TENANT} AND s.device_id = d.device_id
        LIMIT 1
    ) AS target
), given AS (
    INSERT INTO job_executions (tenant_id, job_id, device_id, sweep_at, status)
    SELECT f.tenant_id, f.job_id, d.device_id, f.expires_at, f.status
    FROM followed f CROSS JOIN newcomers d
    ORDER BY f.job_id, d.device_id
    ON CONFLICT (tenant_id, job_id, device_id) DO NOTHING
    RETURNING tenant_id, job_id, status
)
UPDATE jobs j SET next_tick_at = least(coalesce(j.next_tick_at, 'infinity'), greatest(j.next_release_at, now()))
FROM (SELECT DISTINCT tenant_id, job_id FROM given WHERE status = '{U}') g
WHERE j.tenant_id = g.tenant_id AND j.job_id = g.job_id AND j.status = '{JobStatus.IN_PROGRESS}'
"""
# A device left a group: its executions not started yet in the continuous jobs that target the
# group end as REMOVED, unless it is still a target of that job (by id, in another of its groups,
# or as one of every device). One that runs goes on.
LEFT = f"""
WITH followed AS ({FOLLOWED})
UPDATE job_executions e
SET status = %(removed)s, status_details = %(details)s, execution_number = e.execution_number + 1,
    last_updated_at = now(), timeout_at = NULL, sweep_at = NULL
FROM followed f
WHERE e.tenant_id = f.tenant_id AND e.job_id = f.job_id AND e.device_id = %(device_id)s
  AND e.status = ANY(%(leaving)s)
  AND NOT EXISTS (
      SELECT 1 FROM job_targets t
      WHERE t.tenant_id = f.tenant_id AND t.job_id = f.job_id
        AND (t.kind = 'all' OR (t.kind = 'device' AND t.target_id = %(device_id)s)
             OR (t.kind = 'group' AND EXISTS (
                 SELECT 1 FROM device_group_members m
                 WHERE m.tenant_id = t.tenant_id AND m.group_id = t.target_id AND m.device_id = %(device_id)s))))
"""
LEAVING = sources(ExecutionStatus.REMOVED, Actor.TARGETS)
LEFT_REASON = {"reason": "left the job's targets"}
# A group a continuous job follows cannot be deleted (its devices would leave the job unseen).
FOLLOWERS = f"""
SELECT j.job_id FROM job_targets t JOIN jobs j ON j.tenant_id = t.tenant_id AND j.job_id = t.job_id
WHERE t.tenant_id = {TENANT} AND t.continuous AND t.kind = 'group' AND t.target_id = %(group_id)s
  AND j.status = ANY(%(following)s) AND j.stop_action IS NULL
ORDER BY j.job_id LIMIT 5
"""


def joined(group_id: str, device_ids: list[str]) -> dict[str, object]:
    """The parameters of GIVE for devices that joined a group (and of its lock, TARGET_SHARED)."""
    return {
        "kind": "group",
        "target_id": group_id,
        "device_ids": device_ids,
        "following": FOLLOWING,
        "fleet_lock": FLEET_LOCK,
        "target_key": f"group:{group_id}",
    }


def registered(device_ids: list[str]) -> dict[str, object]:
    """The parameters of GIVE for devices just registered (jobs of every device follow them)."""
    return {
        "kind": "all",
        "target_id": "",
        "device_ids": device_ids,
        "following": FOLLOWING,
        "fleet_lock": FLEET_LOCK,
        "target_key": "all",
    }


def left(group_id: str, device_id: str) -> dict[str, object]:
    """The parameters of LEFT for a device that left a group."""
    return {
        **joined(group_id, [device_id]),
        "device_id": device_id,
        "leaving": LEAVING,
        "removed": str(ExecutionStatus.REMOVED),
        "details": Jsonb(LEFT_REASON),
    }


# AWS's AssociateTargetsWithJob: more groups for a continuous job that runs, and at once the
# executions of their members (one a device at most, as always).
JOB_TO_ASSOCIATE = f"""
SELECT j.target_selection, j.status, j.stop_action,
       (SELECT count(*) FROM job_targets t WHERE t.tenant_id = j.tenant_id AND t.job_id = j.job_id
        AND NOT (t.kind = 'group' AND t.target_id = ANY(%(group_ids)s::text[]))) AS others
FROM jobs j WHERE j.tenant_id = {TENANT} AND j.job_id = %(job_id)s
FOR UPDATE
"""
ASSOCIATE = f"""
INSERT INTO job_targets (tenant_id, job_id, kind, target_id, continuous)
SELECT {TENANT}, %(job_id)s, 'group', g, true FROM unnest(%(group_ids)s::text[]) AS g
ON CONFLICT DO NOTHING
"""
GIVE_MEMBERS = f"""
WITH job AS (
    SELECT j.tenant_id, j.job_id, j.expires_at,
           CASE WHEN j.rate_per_minute IS NOT NULL THEN '{U}' ELSE '{Q}' END AS status
    FROM jobs j WHERE j.tenant_id = {TENANT} AND j.job_id = %(job_id)s
), given AS (
    INSERT INTO job_executions (tenant_id, job_id, device_id, sweep_at, status)
    SELECT DISTINCT j.tenant_id, j.job_id, m.device_id, j.expires_at, j.status
    FROM job j JOIN device_group_members m ON m.tenant_id = j.tenant_id AND m.group_id = ANY(%(group_ids)s::text[])
    ORDER BY m.device_id
    ON CONFLICT (tenant_id, job_id, device_id) DO NOTHING
    RETURNING tenant_id, job_id, status
)
UPDATE jobs j SET next_tick_at = least(coalesce(j.next_tick_at, 'infinity'), greatest(j.next_release_at, now()))
FROM (SELECT DISTINCT tenant_id, job_id FROM given WHERE status = '{U}') g
WHERE j.tenant_id = g.tenant_id AND j.job_id = g.job_id
"""
