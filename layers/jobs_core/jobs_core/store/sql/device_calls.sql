-- The device calls, each one statement: authenticate the token, scope the transaction to the
-- device, then decide and act. One statement is one round trip and one unit of work for the
-- client library; PL/pgSQL caches each statement's plan.
--
-- They run as the caller (SECURITY INVOKER, the default), under the same row-level security as
-- any other statement, as jobs_runtime: each function the layer calls names its role, lock timeout
-- and time zone in its own SET clauses, which hold for the call and end with it. Nothing is set on
-- the connection, so a transaction pooler (PgBouncer) or RDS Proxy can give each call any server
-- connection, and a login user that could do more (a superuser locally) still gets RLS. Every one returns a single row whose tenant_id and
-- device_id are NULL when the token is unknown (401 for the caller). Which transitions a device
-- may make comes from the caller (statemachine.py), passed in as p_sources and p_claim_sources;
-- the compare-and-set lives here.
--
-- This file is re-applied by `migrate` after the versioned migrations, every time (CREATE OR
-- REPLACE, under the migration lock). Keep each function's arguments and result columns as they
-- are: containers of the previous version call them until they are replaced. A new shape is a new
-- function (or overload); a versioned migration of a later release drops the retired one.

-- Scope the transaction to the device whose valid token hash this is; NULLs if none. A token is
-- valid while it is the device's current one (expires_at NULL) or, replaced by a rotation, until
-- its overlap ends: one read of device_tokens by its primary key, rotated or not.
CREATE OR REPLACE FUNCTION device_scope(p_token_hash text, OUT tenant_id text, OUT device_id text)
LANGUAGE plpgsql AS $$
BEGIN
    -- The token's row is readable by its hash before the tenant is known (see its policy).
    PERFORM set_config('jobs.token_hash', p_token_hash, true);
    SELECT set_config('jobs.tenant_id', t.tenant_id, true), set_config('jobs.device_id', t.device_id, true)
    INTO tenant_id, device_id
    FROM device_tokens t
    WHERE t.token_hash = p_token_hash AND (t.expires_at IS NULL OR t.expires_at > now());
END $$;

-- QUEUED executions of claimable jobs, oldest first, as a JSON array.
CREATE OR REPLACE FUNCTION device_pending(p_token_hash text, p_limit integer,
                                          OUT tenant_id text, OUT device_id text, OUT pending json)
LANGUAGE plpgsql
SET role = 'jobs_runtime' SET lock_timeout = '2500ms' SET TimeZone = 'UTC'  -- see the top
AS $$
BEGIN
    SELECT d.tenant_id, d.device_id INTO tenant_id, device_id FROM device_scope(p_token_hash) d;
    IF tenant_id IS NULL THEN
        RETURN;
    END IF;
    SELECT coalesce(json_agg(p ORDER BY p.queued_at, p.job_id), '[]')
    INTO pending
    FROM (
        SELECT e.job_id, e.execution_number, e.attempt, e.queued_at, j.document_type, j.document_params,
               j.presign_ttl, j.expires_at
        FROM job_executions e
        JOIN jobs j ON j.tenant_id = e.tenant_id AND j.job_id = e.job_id
        WHERE e.tenant_id = current_setting('jobs.tenant_id', true)
          AND e.device_id = current_setting('jobs.device_id', true)
          AND e.status = 'QUEUED'  -- the device's pending queue (a partial index)
          AND job_claimable(j.status, j.expires_at)
        ORDER BY e.queued_at, e.job_id
        LIMIT p_limit
    ) p;
END $$;

-- An execution as a device sees it, with its job's document, as one JSON object (new fields
-- do not change the function's shape). The document's presign_ttl (NULL: nothing to sign) tells
-- the caller to turn its presigned-URL placeholders into URLs (domain/presign.py).
CREATE OR REPLACE FUNCTION execution_json(e job_executions, j jobs) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'job_id', e.job_id, 'device_id', e.device_id, 'status', e.status, 'status_details', e.status_details,
        'execution_number', e.execution_number, 'attempt', e.attempt,
        'document', json_build_object('type', j.document_type, 'params', j.document_params,
                                      'presign_ttl', j.presign_ttl),
        'queued_at', e.queued_at, 'started_at', e.started_at, 'last_updated_at', e.last_updated_at,
        'expires_at', j.expires_at, 'timeout_at', e.timeout_at,
        'approximate_seconds_before_timed_out', seconds_until(e.timeout_at))
$$;

-- One execution of the device; execution NULL when the device has no execution of that job, or
-- one not released to it yet (UNRELEASED: held back by the job's schedule or rate).
CREATE OR REPLACE FUNCTION device_execution(p_token_hash text, p_job_id text,
                                            OUT tenant_id text, OUT device_id text, OUT execution json)
LANGUAGE plpgsql
SET role = 'jobs_runtime' SET lock_timeout = '2500ms' SET TimeZone = 'UTC'  -- see the top
AS $$
BEGIN
    SELECT d.tenant_id, d.device_id INTO tenant_id, device_id FROM device_scope(p_token_hash) d;
    IF tenant_id IS NULL THEN
        RETURN;
    END IF;
    SELECT execution_json(e, j) INTO execution
    FROM job_executions e
    JOIN jobs j ON j.tenant_id = e.tenant_id AND j.job_id = e.job_id
    WHERE e.tenant_id = current_setting('jobs.tenant_id', true)
      AND e.device_id = current_setting('jobs.device_id', true)
      AND e.job_id = p_job_id
      AND j.job_id = p_job_id
      AND e.status <> 'UNRELEASED';
END $$;

-- Start-next: the device's IN_PROGRESS execution if it has one (unchanged), else claim its oldest
-- claimable QUEUED one (p_claim_sources to p_claimed, as the caller's table says). Of concurrent
-- calls, each claims a different one, and none two: a row another call is claiming is waited for
-- (each call holds one lock at most: no deadlock) and, claimed by then, passed over for the next;
-- a call left with nothing to claim returns what its siblings claimed, committed by then.
CREATE OR REPLACE FUNCTION device_start_next(p_token_hash text, p_claimed text, p_claim_sources text[],
                                             p_status_details jsonb, p_step_timeout_minutes integer,
                                             OUT tenant_id text, OUT device_id text, OUT execution json,
                                             OUT claimed boolean)
LANGUAGE plpgsql
SET role = 'jobs_runtime' SET lock_timeout = '2500ms' SET TimeZone = 'UTC'  -- see the top
AS $$
BEGIN
    SELECT d.tenant_id, d.device_id INTO tenant_id, device_id FROM device_scope(p_token_hash) d;
    IF tenant_id IS NULL THEN
        RETURN;
    END IF;
    claimed := false;
    execution := current_device_execution(p_claimed);
    IF execution IS NOT NULL THEN
        RETURN;
    END IF;
    WITH next AS (
        SELECT e.job_id, j.timeout_minutes, j.expires_at
        FROM job_executions e
        JOIN jobs j ON j.tenant_id = e.tenant_id AND j.job_id = e.job_id
        WHERE e.tenant_id = current_setting('jobs.tenant_id', true)
          AND e.device_id = current_setting('jobs.device_id', true)
          AND e.status = 'QUEUED'  -- the device's pending queue (a partial index)
          AND e.status = ANY(p_claim_sources)
          AND job_claimable(j.status, j.expires_at)
        ORDER BY e.queued_at, e.job_id
        LIMIT 1
        FOR UPDATE OF e
    ), claimed AS (
        UPDATE job_executions e
        SET status = p_claimed,
            status_details = coalesce(p_status_details, e.status_details),
            execution_number = e.execution_number + 1,
            last_updated_at = now(),
            started_at = now(),
            step_timeout_at = now() + make_interval(mins => p_step_timeout_minutes),
            timeout_at = least(now() + make_interval(mins => n.timeout_minutes),
                               now() + make_interval(mins => p_step_timeout_minutes)),
            sweep_at = least(n.expires_at, now() + make_interval(mins => n.timeout_minutes),
                             now() + make_interval(mins => p_step_timeout_minutes))
        FROM next n
        WHERE e.tenant_id = current_setting('jobs.tenant_id', true)
          AND e.device_id = current_setting('jobs.device_id', true)
          AND e.job_id = n.job_id
        RETURNING e.*
    )
    SELECT execution_json(ROW(c.*)::job_executions, j) INTO execution
    FROM claimed c
    JOIN jobs j ON j.tenant_id = c.tenant_id AND j.job_id = c.job_id;
    claimed := execution IS NOT NULL;
    IF execution IS NULL THEN
        execution := current_device_execution(p_claimed);  -- a new snapshot: the claims we waited for
    END IF;
END $$;

-- The scoped device's oldest execution in p_status (IN_PROGRESS), as JSON; NULL if none.
CREATE OR REPLACE FUNCTION current_device_execution(p_status text) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT execution_json(e, j)
    FROM job_executions e
    JOIN jobs j ON j.tenant_id = e.tenant_id AND j.job_id = e.job_id
    WHERE e.tenant_id = current_setting('jobs.tenant_id', true)
      AND e.device_id = current_setting('jobs.device_id', true)
      AND e.status = p_status
    ORDER BY e.started_at, e.job_id
    LIMIT 1
$$;

-- The compare-and-set of a device update. `locked` takes the row lock only while the row still
-- allows the transition (status and version are re-checked on the latest row version after any
-- wait), so of N concurrent claims exactly one updates. As the caller's table says: a move from
-- p_claim_sources is a claim (a claimable job; sets started_at); an outcome from p_retry_sources
-- with a retry left ends the attempt (kept in job_execution_attempts) and queues the next one
-- (p_requeued), in the same change. A step timeout sets a new deadline for this step; timeout_at
-- is the earlier of it and the job's in-progress timeout. `found` is the row as the statement
-- first saw it: when nothing was updated (execution NULL), it tells the caller why.
-- found_status NULL: the device has no execution of the job.
CREATE OR REPLACE FUNCTION device_update(p_token_hash text, p_job_id text, p_status text, p_sources text[],
                                         p_claim_sources text[], p_retry_sources text[], p_requeued text,
                                         p_expected bigint, p_status_details jsonb, p_terminal boolean,
                                         p_step_timeout_minutes integer,
                                         OUT tenant_id text, OUT device_id text,
                                         OUT found_status text, OUT found_number bigint, OUT claimable boolean,
                                         OUT execution json)
LANGUAGE plpgsql
SET role = 'jobs_runtime' SET lock_timeout = '2500ms' SET TimeZone = 'UTC'  -- see the top
AS $$
DECLARE
    abortable boolean;
BEGIN
    SELECT d.tenant_id, d.device_id INTO tenant_id, device_id FROM device_scope(p_token_hash) d;
    IF tenant_id IS NULL THEN
        RETURN;
    END IF;
    WITH found AS (
        SELECT e.status, e.execution_number, job_claimable(j.status, j.expires_at) AS claimable,
               j.expires_at, j.timeout_minutes, j.retries_failed, j.retries_shared,
               j.abort IS NOT NULL AS abortable
        FROM job_executions e
        JOIN jobs j ON j.tenant_id = e.tenant_id AND j.job_id = e.job_id
        WHERE e.tenant_id = current_setting('jobs.tenant_id', true)
          AND e.device_id = current_setting('jobs.device_id', true)
          AND e.job_id = p_job_id
          AND j.job_id = p_job_id
          AND e.status <> 'UNRELEASED'  -- not released to the device: as if it did not exist
    ), locked AS (
        -- the job as `found` read it: a waiting lock re-reads the execution, not the job
        SELECT e.attempt, e.started_at AS attempt_started_at, e.status_details AS attempt_details,
               r.retry, n.started_at, n.step_timeout_at,
               CASE WHEN r.retry OR p_terminal THEN NULL
                    ELSE least(n.started_at + make_interval(mins => f.timeout_minutes), n.step_timeout_at)
               END AS timeout_at,
               f.expires_at
        FROM job_executions e, found f,
             LATERAL (SELECT e.status = ANY(p_retry_sources)
                             AND CASE WHEN f.retries_shared THEN e.retried_failed + e.retried_timed_out
                                      ELSE e.retried_failed END < f.retries_failed AS retry) r,
             LATERAL (SELECT CASE WHEN r.retry THEN NULL
                                  WHEN e.status = ANY(p_claim_sources) THEN now()
                                  ELSE e.started_at END AS started_at,
                             CASE WHEN r.retry OR p_terminal THEN NULL
                                  WHEN p_step_timeout_minutes IS NOT NULL
                                      THEN now() + make_interval(mins => p_step_timeout_minutes)
                                  ELSE e.step_timeout_at END AS step_timeout_at) n
        WHERE e.tenant_id = current_setting('jobs.tenant_id', true)
          AND e.device_id = current_setting('jobs.device_id', true)
          AND e.job_id = p_job_id
          AND e.status = ANY(p_sources)
          AND (p_expected IS NULL OR e.execution_number = p_expected)
          AND (e.status <> ALL(p_claim_sources) OR f.claimable)
        FOR UPDATE OF e
    ), updated AS (
        UPDATE job_executions e
        SET status = CASE WHEN l.retry THEN p_requeued ELSE p_status END,
            status_details = CASE WHEN l.retry THEN NULL ELSE coalesce(p_status_details, e.status_details) END,
            execution_number = e.execution_number + 1,
            attempt = e.attempt + l.retry::integer,
            retried_failed = e.retried_failed + l.retry::integer,
            last_updated_at = now(),
            started_at = l.started_at,
            step_timeout_at = l.step_timeout_at,
            timeout_at = l.timeout_at,
            sweep_at = CASE WHEN p_terminal AND NOT l.retry THEN NULL ELSE least(l.expires_at, l.timeout_at) END
        FROM locked l  -- at most one row: the key below is the whole primary key
        WHERE e.tenant_id = current_setting('jobs.tenant_id', true)
          AND e.device_id = current_setting('jobs.device_id', true)
          AND e.job_id = p_job_id
        RETURNING e.*
    ), ended_attempt AS (
        INSERT INTO job_execution_attempts
            (tenant_id, job_id, device_id, attempt, status, status_details, started_at, finished_at)
        SELECT u.tenant_id, u.job_id, u.device_id, l.attempt, p_status,
               coalesce(p_status_details, l.attempt_details), l.attempt_started_at, now()
        FROM updated u, locked l
        WHERE l.retry
    )
    SELECT f.status, f.execution_number, f.claimable, f.abortable,
           CASE WHEN u.job_id IS NOT NULL THEN json_build_object(
               'job_id', u.job_id, 'device_id', u.device_id, 'status', u.status,
               'execution_number', u.execution_number, 'attempt', u.attempt, 'timeout_at', u.timeout_at,
               'approximate_seconds_before_timed_out', seconds_until(u.timeout_at)) END
    INTO found_status, found_number, claimable, abortable, execution
    FROM found f LEFT JOIN updated u ON true;

    IF execution IS NULL OR NOT p_terminal OR execution->>'status' <> p_status THEN
        RETURN;  -- nothing changed, or the execution is still active (in progress, or queued again)
    END IF;
    -- A finished execution may cross the job's abort rule (which then cancels the job: it cannot
    -- complete any more).
    IF abortable AND abort_crossed_jobs(ARRAY[tenant_id], ARRAY[p_job_id], now()) > 0 THEN
        RETURN;
    END IF;
    -- The last execution to finish completes the job. Only a finisher whose own count row (slot)
    -- shows no active execution can be the last, so only such a one goes on to lock the job row.
    IF EXISTS (
        SELECT 1
        FROM job_executions e
        JOIN job_execution_counts c ON c.tenant_id = e.tenant_id AND c.job_id = e.job_id AND c.slot = e.slot
        WHERE e.tenant_id = current_setting('jobs.tenant_id', true)
          AND e.job_id = p_job_id
          AND e.device_id = current_setting('jobs.device_id', true)
          AND c.unreleased + c.queued + c.in_progress = 0
    ) THEN
        PERFORM complete_finished_jobs(ARRAY[tenant_id], ARRAY[p_job_id]);
    END IF;
END $$;

REVOKE ALL ON FUNCTION device_scope(text), device_pending(text, integer), device_execution(text, text),
    device_start_next(text, text, text[], jsonb, integer), execution_json(job_executions, jobs),
    current_device_execution(text),
    device_update(text, text, text, text[], text[], text[], text, bigint, jsonb, boolean, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION device_scope(text), device_pending(text, integer), device_execution(text, text),
    device_start_next(text, text, text[], jsonb, integer), execution_json(job_executions, jobs),
    current_device_execution(text),
    device_update(text, text, text, text[], text[], text[], text, bigint, jsonb, boolean, integer) TO jobs_runtime;
