"""What an operator does to start work: create a job, fanned out to its targets in one statement.

The call runs scoped to the operator's tenant (jobs.tenant_id), which row-level security
enforces, in one transaction sent as one round trip.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from aws_lambda_powertools.metrics import MetricUnit
from psycopg.types.json import Jsonb

from jobs_core.domain import notifications, targets, templates
from jobs_core.domain.job_settings import MAX_TARGETS, JobCreate
from jobs_core.domain.models import JobCreated
from jobs_core.domain.rollouts import Rule
from jobs_core.domain.statemachine import ExecutionStatus, JobStatus
from jobs_core.errors import Conflict, InvalidRequest, LimitExceeded, NotFound
from jobs_core.observability import metrics
from jobs_core.store.db import Database

# One set-based statement, whatever the fleet size: the job row only if it has targets, then
# one execution per target (the triggers tally them into the job's count rows). A job held back
# (scheduled to start later, or paced) gets its executions UNRELEASED, but for the first minute's
# worth of a paced job that starts now, released at once in queue order (by device id); the
# schedule releases the rest (rollouts.py). expires_in_hours counts from the start.
CREATE = """
WITH targets AS ({targets}),
plan AS MATERIALIZED (  -- counted once
    SELECT CASE WHEN %(start_time)s::timestamptz > now() THEN {scheduled} ELSE {running} END AS status,
           greatest(now(), %(start_time)s::timestamptz) AS start_at,
           (SELECT count(*) FROM targets) AS total
), first_release AS (
    SELECT p.*, CASE WHEN p.status = {scheduled} THEN 0 ELSE least(p.total, %(rate)s) END AS n
    FROM plan p
), job AS (
    INSERT INTO jobs (tenant_id, job_id, document_type, document_params, template_id, presigned_url_config, presign_ttl,
                      target_device_id, target_group_id, target_all, target_selection, expires_at, created_by,
                      timeout_minutes, retry, retries_failed, retries_timed_out, retries_shared,
                      status, scheduling, rollout, abort, start_time, end_time, end_behavior, description,
                      rate_per_minute,
                      released, released_until, next_release_at, next_tick_at)
    SELECT current_setting('jobs.tenant_id', true), %(job_id)s, %(document_type)s, %(document_params)s,
           %(template_id)s, %(presigned_url_config)s, %(presign_ttl)s,
           %(target_device_id)s, %(target_group_id)s, %(target_all)s, %(target_selection)s,
           f.start_at + make_interval(hours => %(expires_in_hours)s::integer), %(created_by)s,
           %(timeout_minutes)s, %(retry)s, %(retries_failed)s, %(retries_timed_out)s, %(retries_shared)s,
           f.status, %(scheduling)s, %(rollout)s, %(abort)s, %(start_time)s, %(end_time)s, %(end_behavior)s,
           %(description)s,
           %(rate)s,
           CASE WHEN %(held)s THEN f.n END,
           r.released_until,
           CASE WHEN f.status = {scheduled} THEN %(start_time)s
                WHEN f.n < f.total THEN r.released_until + make_interval(secs => 60.0 / %(rate)s) END,
           CASE WHEN f.status = {scheduled} THEN %(start_time)s
                WHEN f.n < f.total THEN least(r.released_until + make_interval(secs => 60.0 / %(rate)s),
                                              %(end_time)s)
                ELSE %(end_time)s END
    FROM first_release f
    CROSS JOIN LATERAL (
        -- the rate's credit: a full minute's, less what was released now
        SELECT CASE WHEN f.status <> {scheduled} AND %(rate)s IS NOT NULL
                    THEN now() - interval '1 minute' + make_interval(secs => f.n * 60.0 / %(rate)s) END
               AS released_until
    ) r
    -- a snapshot needs a device; a continuous job may wait for its first; none names what is not there
    WHERE (f.total > 0 OR %(continuous)s) AND NOT EXISTS ({unknown})
    RETURNING tenant_id, job_id, status, expires_at
), job_targets AS (
    INSERT INTO job_targets (tenant_id, job_id, kind, target_id, continuous)
    SELECT job.tenant_id, job.job_id, r.kind, r.id, %(continuous)s FROM job, ({target_rows}) r
), executions AS (
    INSERT INTO job_executions (tenant_id, job_id, device_id, sweep_at, status)
    SELECT job.tenant_id, job.job_id, t.device_id, job.expires_at, {status}
    FROM job, {ordered_targets}
    RETURNING 1
)
SELECT job.job_id, job.status, job.expires_at, (SELECT count(*) FROM executions) AS execution_count
FROM job
"""
ALL_RELEASED = {"status": f"'{ExecutionStatus.QUEUED}'", "ordered_targets": "targets t"}
HELD_BACK = {
    "status": f"CASE WHEN t.n <= (SELECT n FROM first_release) THEN '{ExecutionStatus.QUEUED}'"
    f" ELSE '{ExecutionStatus.UNRELEASED}' END",
    "ordered_targets": "(SELECT device_id, row_number() OVER (ORDER BY device_id) AS n FROM targets) t",
}
JOB_STATUSES = {"scheduled": f"'{JobStatus.SCHEDULED}'", "running": f"'{JobStatus.IN_PROGRESS}'"}


def create(db: Database, tenant_id: str, user: str | None, given: JobCreate) -> JobCreated:
    request, presign_ttl = templates.applied(db, tenant_id, given)
    retries_failed, retries_timed_out, retries_shared = retry_budget(request)
    config = request.presigned_url_config
    params = request.model_dump(
        exclude={
            "job_id",
            "document_params",
            "retry",
            "scheduling",
            "rollout",
            "abort",
            "targets",
            "document_parameters",
            "presigned_url_config",
        }
    ) | {
        "presigned_url_config": Jsonb(config.model_dump(exclude_none=True)) if config else None,
        "presign_ttl": presign_ttl,
        "retry": Jsonb([criterion.model_dump() for criterion in request.retry]) if request.retry else None,
        "retries_failed": retries_failed,
        "retries_timed_out": retries_timed_out,
        "retries_shared": retries_shared,
        "job_id": request.job_id or str(uuid.uuid4()),
        "document_params": Jsonb(request.document_params),
        "created_by": user,
        "fleet_lock": targets.FLEET_LOCK,
        **_target_params(request),
        **_rollout_params(request),
    }
    statement = CREATE.format(
        targets=targets.query(request),
        unknown=targets.UNKNOWN,
        target_rows=targets.ROWS,
        **JOB_STATUSES,
        **(HELD_BACK if params["held"] else ALL_RELEASED),
    )
    try:
        with db.transaction(tenant_id=tenant_id) as conn:
            conn.execute(targets.FLEET_READ, params)
            if params["continuous"]:  # a device joining a target now waits for this job, and gets it
                conn.execute(targets.TARGETS_EXCLUSIVE, params)
            result = conn.execute(statement, params)
            unknown = conn.execute(targets.UNKNOWN, params)
    except psycopg.errors.UniqueViolation:
        raise Conflict(f"job {params['job_id']} already exists") from None
    row = result.fetchone()
    if row is not None:
        notifications.wake()
        metrics.add_metric(name="JobsCreated", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="ExecutionsQueued", unit=MetricUnit.Count, value=row["execution_count"])
        return JobCreated(**row)
    raise targets.none_found(request, [r["target"] for r in unknown.fetchall()])


def _target_params(request: JobCreate) -> dict[str, Any]:
    """The job's targets as lists (devices, groups, every device), and how they are selected."""
    resolved = targets.resolved(request)
    return {
        "device_ids": resolved.device_ids,
        "group_ids": resolved.group_ids,
        "target_all": resolved.all,
        "continuous": request.target_selection == "CONTINUOUS",
        "target_keys": resolved.keys,
    }


def _rollout_params(request: JobCreate) -> dict[str, Any]:
    """The scheduling, rollout and abort settings as the jobs row keeps them; the rollout's rule is
    read from its setting (rollouts.Rule), here for the rate in force at the start."""
    scheduling = request.scheduling
    rollout = request.rollout.model_dump(mode="json", exclude_none=True) if request.rollout else None
    return {
        "scheduling": Jsonb(scheduling.model_dump(mode="json")) if scheduling else None,
        "rollout": Jsonb(rollout) if rollout else None,
        "abort": Jsonb([criterion.model_dump() for criterion in request.abort]) if request.abort else None,
        "start_time": scheduling.start_time if scheduling else None,
        "end_time": scheduling.end_time if scheduling else None,
        "end_behavior": scheduling.end_behavior if scheduling else None,
        "rate": Rule.of(rollout).rate(0),
        "held": rollout is not None or (scheduling is not None and scheduling.start_time is not None),
    }


def retry_budget(request: JobCreate) -> tuple[int, int, bool]:
    """What the retry criteria allow: (retries of a FAILED attempt, of a TIMED_OUT one, whether
    the two draw on one budget). A criterion for a failure type governs it; ALL governs the types
    without one of their own; ALL alone is one budget for both."""
    given = {criterion.failure_type: criterion.number_of_retries for criterion in request.retry or []}
    if set(given) == {"ALL"}:
        return given["ALL"], given["ALL"], True
    fallback = given.get("ALL", 0)
    return given.get("FAILED", fallback), given.get("TIMED_OUT", fallback), False


def associate(db: Database, tenant_id: str, job_id: str, group_ids: list[str]) -> int:
    """More target groups for a continuous job that runs (AWS's AssociateTargetsWithJob): their
    members get their executions in this transaction; how many targets the job has now."""
    ids = sorted(set(group_ids))
    params = {
        "job_id": job_id,
        "group_ids": ids,
        "device_ids": [],
        "fleet_lock": targets.FLEET_LOCK,
        "target_keys": [f"group:{g}" for g in ids],
    }
    with db.transaction(tenant_id=tenant_id, pipeline=False) as conn:
        conn.execute(targets.FLEET_READ, params)
        conn.execute(targets.TARGETS_EXCLUSIVE, params)
        job = conn.execute(targets.JOB_TO_ASSOCIATE, params).fetchone()
        if job is None:
            raise NotFound(f"job {job_id} not found")
        if job["target_selection"] != "CONTINUOUS" or job["status"] != JobStatus.IN_PROGRESS or job["stop_action"]:
            raise InvalidRequest("targets are added to a continuous job in progress only")
        unknown = [row["target"] for row in conn.execute(targets.UNKNOWN, params)]
        if unknown:
            raise targets.not_found(unknown)
        if job["others"] + len(ids) > MAX_TARGETS:
            raise LimitExceeded(f"a job has at most {MAX_TARGETS} targets")
        conn.execute(targets.ASSOCIATE, params)
        conn.execute(targets.GIVE_MEMBERS, params)
    notifications.wake()
    return int(job["others"]) + len(ids)
