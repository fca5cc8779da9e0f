"""What a device does with its job executions: list pending, read one, claim / progress / finish.

Each call is one transaction in one round trip: authenticate the token, scope the transaction
to the device's tenant, then one statement that decides and acts. A refusal is explained from
what that same statement saw, after the fact, without another query.
"""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from jobs_core import devices
from jobs_core.db import Database
from jobs_core.errors import Conflict, InvalidRequest, NotFound
from jobs_core.models import Document, Execution, ExecutionUpdate, ExecutionUpdated, PendingJob, PendingJobs
from jobs_core.statemachine import TERMINAL, TRANSITIONS, Actor, ExecutionStatus, is_claim, sources

PENDING_LIMIT = 10

PENDING = """
SELECT e.job_id, e.execution_number, e.queued_at, j.document_type, j.document_params, j.expires_at
FROM job_executions e
JOIN jobs j ON j.tenant_id = e.tenant_id AND j.job_id = e.job_id
WHERE e.tenant_id = current_setting('jobs.tenant_id', true)
  AND e.device_id = current_setting('jobs.device_id', true)
  AND e.status = 'QUEUED'
  AND j.status = 'IN_PROGRESS'
  AND (j.expires_at IS NULL OR j.expires_at > now())
ORDER BY e.queued_at, e.job_id
LIMIT %(limit)s
"""

DESCRIBE = """
SELECT e.job_id, e.device_id, e.status, e.status_details, e.execution_number,
       e.queued_at, e.started_at, e.last_updated_at,
       j.document_type, j.document_params, j.expires_at
FROM job_executions e
JOIN jobs j ON j.tenant_id = e.tenant_id AND j.job_id = e.job_id
WHERE e.tenant_id = current_setting('jobs.tenant_id', true)
  AND e.device_id = current_setting('jobs.device_id', true)
  AND e.job_id = %(job_id)s
  AND j.job_id = %(job_id)s
"""

# The compare-and-set. `locked` takes the row lock only while the row still allows the
# transition (status and version are re-checked on the latest row version after any wait),
# so of N concurrent claims exactly one updates. `found` is the row as the statement first
# saw it: when nothing was updated, it tells why.
UPDATE = """
WITH found AS (
    SELECT e.status, e.execution_number,
           j.status = 'IN_PROGRESS' AND (j.expires_at IS NULL OR j.expires_at > now()) AS claimable
    FROM job_executions e
    JOIN jobs j ON j.tenant_id = e.tenant_id AND j.job_id = e.job_id
    WHERE e.tenant_id = current_setting('jobs.tenant_id', true)
      AND e.device_id = current_setting('jobs.device_id', true)
      AND e.job_id = %(job_id)s
      AND j.job_id = %(job_id)s
), locked AS (
    SELECT e.status AS previous
    FROM job_executions e
    JOIN jobs j ON j.tenant_id = e.tenant_id AND j.job_id = e.job_id
    WHERE e.tenant_id = current_setting('jobs.tenant_id', true)
      AND e.device_id = current_setting('jobs.device_id', true)
      AND e.job_id = %(job_id)s
      AND j.job_id = %(job_id)s
      AND e.status = ANY(%(sources)s::text[])
      AND (%(expected)s::integer IS NULL OR e.execution_number = %(expected)s::integer)
      -- a claim needs a job that is running and unexpired
      AND (e.status <> 'QUEUED' OR %(status)s <> 'IN_PROGRESS'
           OR (j.status = 'IN_PROGRESS' AND (j.expires_at IS NULL OR j.expires_at > now())))
    FOR UPDATE OF e
), updated AS (
    UPDATE job_executions e
    SET status = %(status)s,
        status_details = coalesce(%(status_details)s, e.status_details),
        execution_number = e.execution_number + 1,
        last_updated_at = now(),
        started_at = CASE WHEN l.previous = 'QUEUED' AND %(status)s = 'IN_PROGRESS' THEN now()
                          ELSE e.started_at END
    FROM locked l  -- at most one row: the key below is the whole primary key
    WHERE e.tenant_id = current_setting('jobs.tenant_id', true)
      AND e.device_id = current_setting('jobs.device_id', true)
      AND e.job_id = %(job_id)s
    RETURNING e.status, e.execution_number
)
SELECT f.status AS found_status, f.execution_number AS found_number, f.claimable,
       u.status, u.execution_number
FROM found f LEFT JOIN updated u ON true
"""

# Completing the job when its last execution finishes, at a cost independent of the job's size:
# the counts are kept per slot (at most 16 rows a job) by triggers. Concurrent finishers each
# update their own slot row, so a finisher that drained its slot takes the job row's lock
# before checking; whoever locks last sees every other finisher's slot committed.
LOCK_JOB_IF_SLOT_DRAINED = """
SELECT 1
FROM jobs j
WHERE j.tenant_id = current_setting('jobs.tenant_id', true)
  AND j.job_id = %(job_id)s
  AND j.status = 'IN_PROGRESS'
  AND EXISTS (
      SELECT 1
      FROM job_executions e
      JOIN job_execution_counts c ON c.tenant_id = e.tenant_id AND c.job_id = e.job_id AND c.slot = e.slot
      WHERE e.tenant_id = j.tenant_id AND e.job_id = j.job_id
        AND e.device_id = current_setting('jobs.device_id', true)
        AND c.queued + c.in_progress = 0)
FOR UPDATE OF j
"""

COMPLETE_JOB_IF_DONE = """
UPDATE jobs j
SET status = 'COMPLETED', updated_at = now()
WHERE j.tenant_id = current_setting('jobs.tenant_id', true)
  AND j.job_id = %(job_id)s
  AND j.status = 'IN_PROGRESS'  -- a CANCELED job is never completed
  AND NOT EXISTS (
      SELECT 1 FROM job_execution_counts c
      WHERE c.tenant_id = j.tenant_id AND c.job_id = j.job_id AND c.queued + c.in_progress > 0)
"""


def _document(row: dict[str, Any]) -> Document:
    return Document(type=row["document_type"], params=row["document_params"])


def pending(db: Database, token: str | None) -> PendingJobs:
    with db.transaction() as conn:
        authenticated = devices.authenticate(conn, token)
        result = conn.execute(PENDING, {"limit": PENDING_LIMIT})
    devices.identity(authenticated)
    return PendingJobs(
        jobs=[
            PendingJob(
                job_id=row["job_id"],
                execution_number=row["execution_number"],
                document=_document(row),
                queued_at=row["queued_at"],
                expires_at=row["expires_at"],
            )
            for row in result.fetchall()
        ]
    )


def describe(db: Database, token: str | None, job_id: str) -> Execution:
    with db.transaction() as conn:
        authenticated = devices.authenticate(conn, token)
        result = conn.execute(DESCRIBE, {"job_id": job_id})
    devices.identity(authenticated)
    row = result.fetchone()
    if row is None:
        raise NotFound("job execution not found")
    return Execution(document=_document(row), **row)


def update(db: Database, token: str | None, job_id: str, change: ExecutionUpdate) -> ExecutionUpdated:
    target = ExecutionStatus(change.status)
    params = {
        "job_id": job_id,
        "status": str(target),
        "sources": sources(target, Actor.DEVICE),
        "expected": change.execution_number,
        "status_details": Jsonb(change.status_details) if change.status_details is not None else None,
    }
    with db.transaction() as conn:
        authenticated = devices.authenticate(conn, token)
        result = conn.execute(UPDATE, params)
        if target in TERMINAL:
            conn.execute(LOCK_JOB_IF_SLOT_DRAINED, params)
            conn.execute(COMPLETE_JOB_IF_DONE, params)
    _, device_id = devices.identity(authenticated)
    row = result.fetchone()
    if row is None:
        raise NotFound("job execution not found")
    if row["status"] is not None:
        return ExecutionUpdated(
            job_id=job_id, device_id=device_id, status=row["status"], execution_number=row["execution_number"]
        )
    found = ExecutionStatus(row["found_status"])
    if (found, target, Actor.DEVICE) not in TRANSITIONS:
        raise InvalidRequest(f"cannot move an execution from {found} to {target}")
    if is_claim(found, target) and not row["claimable"]:
        raise InvalidRequest("the job is canceled, completed or expired: its execution cannot be claimed")
    if change.execution_number is not None and change.execution_number != row["found_number"]:
        raise Conflict(
            f"execution_number {change.execution_number} is stale: the execution is at {row['found_number']}"
        )
    raise Conflict("the execution changed concurrently: read it again and retry")
