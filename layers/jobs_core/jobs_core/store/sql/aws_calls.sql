-- The device calls of AWS IoT Jobs' data plane (boto3's iot-jobs-data), each one statement like
-- the native ones and built on them: the provision token authenticates the device, and the thing
-- the path names must be that device (thing_ok false: nothing is read or done, 404 for the
-- caller). Every function returns tenant_id NULL when the token is unknown. Those the layer calls
-- set their role, lock timeout and time zone as the native ones do (see device_calls.sql).
--
-- Re-applied by `migrate` after the versioned migrations (see device_calls.sql for the rules).

-- Scope the transaction to the token's device; whether it is the thing named.
CREATE OR REPLACE FUNCTION thing_scope(p_token_hash text, p_thing_name text,
                                       OUT tenant_id text, OUT device_id text, OUT thing_ok boolean)
LANGUAGE plpgsql AS $$
BEGIN
    SELECT d.tenant_id, d.device_id INTO tenant_id, device_id FROM device_scope(p_token_hash) d;
    thing_ok := tenant_id IS NOT NULL AND device_id = p_thing_name;
END $$;

-- An execution summary as the data plane lists it.
CREATE OR REPLACE FUNCTION execution_summary_json(e job_executions) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object('job_id', e.job_id, 'queued_at', e.queued_at, 'started_at', e.started_at,
                             'last_updated_at', e.last_updated_at, 'execution_number', e.execution_number,
                             'attempt', e.attempt)
$$;

-- GetPendingJobExecutions: the device's IN_PROGRESS executions, then its QUEUED ones of claimable
-- jobs, oldest first, at most p_limit of each.
CREATE OR REPLACE FUNCTION aws_pending(p_token_hash text, p_thing_name text, p_limit integer,
                                       OUT tenant_id text, OUT device_id text, OUT thing_ok boolean,
                                       OUT in_progress json, OUT queued json)
LANGUAGE plpgsql
SET role = 'jobs_runtime' SET lock_timeout = '2500ms' SET TimeZone = 'UTC'  -- see the top
AS $$
BEGIN
    SELECT t.tenant_id, t.device_id, t.thing_ok INTO tenant_id, device_id, thing_ok
    FROM thing_scope(p_token_hash, p_thing_name) t;
    IF NOT thing_ok THEN
        RETURN;
    END IF;
    SELECT coalesce(json_agg(execution_summary_json(p) ORDER BY p.started_at, p.job_id), '[]') INTO in_progress
    FROM (
        SELECT e.* FROM job_executions e
        WHERE e.tenant_id = current_setting('jobs.tenant_id', true)
          AND e.device_id = current_setting('jobs.device_id', true)
          AND e.status = 'IN_PROGRESS'
        ORDER BY e.started_at, e.job_id
        LIMIT p_limit
    ) p;
    SELECT coalesce(json_agg(execution_summary_json(q) ORDER BY q.queued_at, q.job_id), '[]') INTO queued
    FROM (
        SELECT e.* FROM job_executions e
        JOIN jobs j ON j.tenant_id = e.tenant_id AND j.job_id = e.job_id
        WHERE e.tenant_id = current_setting('jobs.tenant_id', true)
          AND e.device_id = current_setting('jobs.device_id', true)
          AND e.status = 'QUEUED'  -- the device's pending queue (a partial index)
          AND job_claimable(j.status, j.expires_at)
        ORDER BY e.queued_at, e.job_id
        LIMIT p_limit
    ) q;
END $$;

-- DescribeJobExecution: one execution of the device with its job's document (p_job_id NULL:
-- "$next", its IN_PROGRESS one, else its oldest claimable QUEUED one, not claimed). With
-- p_attempt, that attempt: the current one, or an earlier one as its outcome was kept.
CREATE OR REPLACE FUNCTION aws_execution(p_token_hash text, p_thing_name text, p_job_id text, p_attempt integer,
                                         OUT tenant_id text, OUT device_id text, OUT thing_ok boolean,
                                         OUT execution json)
LANGUAGE plpgsql
SET role = 'jobs_runtime' SET lock_timeout = '2500ms' SET TimeZone = 'UTC'  -- see the top
AS $$
BEGIN
    SELECT t.tenant_id, t.device_id, t.thing_ok INTO tenant_id, device_id, thing_ok
    FROM thing_scope(p_token_hash, p_thing_name) t;
    IF NOT thing_ok THEN
        RETURN;
    END IF;
    IF p_job_id IS NULL THEN
        execution := current_device_execution('IN_PROGRESS');
        IF execution IS NULL THEN
            SELECT execution_json(e, j) INTO execution
            FROM job_executions e
            JOIN jobs j ON j.tenant_id = e.tenant_id AND j.job_id = e.job_id
            WHERE e.tenant_id = current_setting('jobs.tenant_id', true)
              AND e.device_id = current_setting('jobs.device_id', true)
              AND e.status = 'QUEUED'
              AND job_claimable(j.status, j.expires_at)
            ORDER BY e.queued_at, e.job_id
            LIMIT 1;
        END IF;
        RETURN;
    END IF;
    SELECT CASE WHEN p_attempt IS NULL OR e.attempt = p_attempt THEN execution_json(e, j)
                ELSE (SELECT json_build_object(
                          'job_id', e.job_id, 'device_id', e.device_id, 'status', a.status,
                          'status_details', a.status_details, 'execution_number', NULL, 'attempt', a.attempt,
                          'document', json_build_object('type', j.document_type, 'params', j.document_params,
                                                        'presign_ttl', j.presign_ttl),
                          'queued_at', NULL, 'started_at', a.started_at, 'last_updated_at', a.finished_at,
                          'expires_at', j.expires_at, 'timeout_at', NULL, 'approximate_seconds_before_timed_out', NULL)
                      FROM job_execution_attempts a
                      WHERE a.tenant_id = e.tenant_id AND a.job_id = e.job_id AND a.device_id = e.device_id
                        AND a.attempt = p_attempt)
           END
    INTO execution
    FROM job_executions e
    JOIN jobs j ON j.tenant_id = e.tenant_id AND j.job_id = e.job_id
    WHERE e.tenant_id = current_setting('jobs.tenant_id', true)
      AND e.device_id = current_setting('jobs.device_id', true)
      AND e.job_id = p_job_id
      AND j.job_id = p_job_id
      AND e.status <> 'UNRELEASED';  -- not released to the device: as if it did not exist
END $$;

-- StartNextPendingJobExecution: device_start_next, for the thing named.
CREATE OR REPLACE FUNCTION aws_start_next(p_token_hash text, p_thing_name text, p_claimed text,
                                          p_claim_sources text[], p_status_details jsonb,
                                          p_step_timeout_minutes integer,
                                          OUT tenant_id text, OUT device_id text, OUT thing_ok boolean,
                                          OUT execution json, OUT claimed boolean)
LANGUAGE plpgsql
SET role = 'jobs_runtime' SET lock_timeout = '2500ms' SET TimeZone = 'UTC'  -- see the top
AS $$
BEGIN
    SELECT t.tenant_id, t.device_id, t.thing_ok INTO tenant_id, device_id, thing_ok
    FROM thing_scope(p_token_hash, p_thing_name) t;
    IF NOT thing_ok THEN
        RETURN;
    END IF;
    SELECT s.execution, s.claimed INTO execution, claimed
    FROM device_start_next(p_token_hash, p_claimed, p_claim_sources, p_status_details, p_step_timeout_minutes) s;
END $$;

-- UpdateJobExecution: device_update, for the thing named, and only while the execution is at
-- attempt p_attempt when one is given (the row is locked first, so the attempt cannot change in
-- between: found_attempt tells the caller what it is). With p_include_state, the execution as it
-- is after the update, with its document.
CREATE OR REPLACE FUNCTION aws_update(p_token_hash text, p_thing_name text, p_attempt integer, p_job_id text,
                                      p_status text, p_sources text[], p_claim_sources text[],
                                      p_retry_sources text[], p_requeued text, p_expected bigint,
                                      p_status_details jsonb, p_terminal boolean, p_step_timeout_minutes integer,
                                      p_include_state boolean,
                                      OUT tenant_id text, OUT device_id text, OUT thing_ok boolean,
                                      OUT found_attempt integer, OUT found_status text, OUT found_number bigint,
                                      OUT claimable boolean, OUT execution json, OUT state json)
LANGUAGE plpgsql
SET role = 'jobs_runtime' SET lock_timeout = '2500ms' SET TimeZone = 'UTC'  -- see the top
AS $$
BEGIN
    SELECT t.tenant_id, t.device_id, t.thing_ok INTO tenant_id, device_id, thing_ok
    FROM thing_scope(p_token_hash, p_thing_name) t;
    IF NOT thing_ok THEN
        RETURN;
    END IF;
    IF p_attempt IS NOT NULL THEN
        SELECT e.attempt INTO found_attempt
        FROM job_executions e
        WHERE e.tenant_id = current_setting('jobs.tenant_id', true)
          AND e.device_id = current_setting('jobs.device_id', true)
          AND e.job_id = p_job_id
          AND e.status <> 'UNRELEASED'
        FOR UPDATE;
        IF found_attempt IS DISTINCT FROM p_attempt THEN
            RETURN;
        END IF;
    END IF;
    SELECT u.found_status, u.found_number, u.claimable, u.execution
    INTO found_status, found_number, claimable, execution
    FROM device_update(p_token_hash, p_job_id, p_status, p_sources, p_claim_sources, p_retry_sources, p_requeued,
                       p_expected, p_status_details, p_terminal, p_step_timeout_minutes) u;
    IF p_include_state AND execution IS NOT NULL THEN
        SELECT execution_json(e, j) INTO state
        FROM job_executions e
        JOIN jobs j ON j.tenant_id = e.tenant_id AND j.job_id = e.job_id
        WHERE e.tenant_id = current_setting('jobs.tenant_id', true)
          AND e.device_id = current_setting('jobs.device_id', true)
          AND e.job_id = p_job_id
          AND j.job_id = p_job_id;
    END IF;
END $$;

REVOKE ALL ON FUNCTION thing_scope(text, text), execution_summary_json(job_executions),
    aws_pending(text, text, integer), aws_execution(text, text, text, integer),
    aws_start_next(text, text, text, text[], jsonb, integer),
    aws_update(text, text, integer, text, text, text[], text[], text[], text, bigint, jsonb, boolean, integer, boolean)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION thing_scope(text, text), execution_summary_json(job_executions),
    aws_pending(text, text, integer), aws_execution(text, text, text, integer),
    aws_start_next(text, text, text, text[], jsonb, integer),
    aws_update(text, text, integer, text, text, text[], text[], text[], text, bigint, jsonb, boolean, integer, boolean)
    TO jobs_runtime;
