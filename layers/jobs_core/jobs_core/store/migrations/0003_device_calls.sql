-- The three device calls, each one statement: authenticate the token, scope the
-- transaction to the device, then decide and act. One statement is one round trip
-- and one unit of work for the client library (a pipeline of four statements cost
-- more client CPU than the SQL it carried); PL/pgSQL caches each statement's plan.
--
-- They run as the caller (SECURITY INVOKER, the default): as jobs_runtime, under the
-- same row-level security as any other statement. Every one returns a single row whose
-- tenant_id and device_id are NULL when the token is unknown (401 for the caller).
-- Which transitions a device may make is decided by the caller (statemachine.py) and
-- passed in as p_sources; the compare-and-set lives here.
--
-- Changing one: CREATE OR REPLACE it in a new migration, with the same arguments and result
-- columns (containers of the previous version still call it during a deploy); a new shape
-- is a new function.

-- Scope the transaction to the device whose token hash this is; NULLs if none.
CREATE FUNCTION device_scope(p_token_hash text, OUT tenant_id text, OUT device_id text)
LANGUAGE plpgsql AS $$
BEGIN
    -- The registry row is readable by its token hash before the tenant is known (see its policy).
    PERFORM set_config('jobs.token_hash', p_token_hash, true);
    SELECT set_config('jobs.tenant_id', s.tenant_id, true), set_config('jobs.device_id', s.device_id, true)
    INTO tenant_id, device_id
    FROM device_state s
    WHERE s.token_hash = p_token_hash;
END $$;

-- QUEUED executions of running, unexpired jobs, oldest first, as a JSON array.
CREATE FUNCTION device_pending(p_token_hash text, p_limit integer,
                               OUT tenant_id text, OUT device_id text, OUT pending json)
LANGUAGE plpgsql AS $$
BEGIN
    SELECT d.tenant_id, d.device_id INTO tenant_id, device_id FROM device_scope(p_token_hash) d;
    IF tenant_id IS NULL THEN
        RETURN;
    END IF;
    SELECT coalesce(json_agg(p ORDER BY p.queued_at, p.job_id), '[]')
    INTO pending
    FROM (
        SELECT e.job_id, e.execution_number, e.queued_at, j.document_type, j.document_params, j.expires_at
        FROM job_executions e
        JOIN jobs j ON j.tenant_id = e.tenant_id AND j.job_id = e.job_id
        WHERE e.tenant_id = current_setting('jobs.tenant_id', true)
          AND e.device_id = current_setting('jobs.device_id', true)
          AND e.status = 'QUEUED'
          AND j.status = 'IN_PROGRESS'
          AND (j.expires_at IS NULL OR j.expires_at > now())
        ORDER BY e.queued_at, e.job_id
        LIMIT p_limit
    ) p;
END $$;

-- One execution of the device, with its job's document; the execution columns are
-- NULL when the device has no execution of that job.
CREATE FUNCTION device_describe(p_token_hash text, p_job_id text,
                                OUT tenant_id text, OUT device_id text,
                                OUT job_id text, OUT status text, OUT status_details jsonb,
                                OUT execution_number integer, OUT queued_at timestamptz,
                                OUT started_at timestamptz, OUT last_updated_at timestamptz,
                                OUT document_type text, OUT document_params jsonb,
                                OUT expires_at timestamptz)
LANGUAGE plpgsql AS $$
BEGIN
    SELECT d.tenant_id, d.device_id INTO tenant_id, device_id FROM device_scope(p_token_hash) d;
    IF tenant_id IS NULL THEN
        RETURN;
    END IF;
    SELECT e.job_id, e.status, e.status_details, e.execution_number, e.queued_at, e.started_at,
           e.last_updated_at, j.document_type, j.document_params, j.expires_at
    INTO job_id, status, status_details, execution_number, queued_at, started_at,
         last_updated_at, document_type, document_params, expires_at
    FROM job_executions e
    JOIN jobs j ON j.tenant_id = e.tenant_id AND j.job_id = e.job_id
    WHERE e.tenant_id = current_setting('jobs.tenant_id', true)
      AND e.device_id = current_setting('jobs.device_id', true)
      AND e.job_id = p_job_id
      AND j.job_id = p_job_id;
END $$;

-- The compare-and-set of a device update. `locked` takes the row lock only while the
-- row still allows the transition (status and version are re-checked on the latest
-- row version after any wait), so of N concurrent claims exactly one updates. `found`
-- is the row as the statement first saw it: when nothing was updated (status NULL),
-- it tells the caller why. found_status NULL: the device has no execution of the job.
CREATE FUNCTION device_update(p_token_hash text, p_job_id text, p_status text, p_sources text[],
                              p_expected integer, p_status_details jsonb, p_terminal boolean,
                              OUT tenant_id text, OUT device_id text,
                              OUT found_status text, OUT found_number integer, OUT claimable boolean,
                              OUT status text, OUT execution_number integer)
LANGUAGE plpgsql AS $$
BEGIN
    SELECT d.tenant_id, d.device_id INTO tenant_id, device_id FROM device_scope(p_token_hash) d;
    IF tenant_id IS NULL THEN
        RETURN;
    END IF;
    WITH found AS (
        SELECT e.status, e.execution_number,
               j.status = 'IN_PROGRESS' AND (j.expires_at IS NULL OR j.expires_at > now()) AS claimable
        FROM job_executions e
        JOIN jobs j ON j.tenant_id = e.tenant_id AND j.job_id = e.job_id
        WHERE e.tenant_id = current_setting('jobs.tenant_id', true)
          AND e.device_id = current_setting('jobs.device_id', true)
          AND e.job_id = p_job_id
          AND j.job_id = p_job_id
    ), locked AS (
        SELECT e.status AS previous
        FROM job_executions e
        JOIN jobs j ON j.tenant_id = e.tenant_id AND j.job_id = e.job_id
        WHERE e.tenant_id = current_setting('jobs.tenant_id', true)
          AND e.device_id = current_setting('jobs.device_id', true)
          AND e.job_id = p_job_id
          AND j.job_id = p_job_id
          AND e.status = ANY(p_sources)
          AND (p_expected IS NULL OR e.execution_number = p_expected)
          -- a claim needs a job that is running and unexpired
          AND (e.status <> 'QUEUED' OR p_status <> 'IN_PROGRESS'
               OR (j.status = 'IN_PROGRESS' AND (j.expires_at IS NULL OR j.expires_at > now())))
        FOR UPDATE OF e
    ), updated AS (
        UPDATE job_executions e
        SET status = p_status,
            status_details = coalesce(p_status_details, e.status_details),
            execution_number = e.execution_number + 1,
            last_updated_at = now(),
            started_at = CASE WHEN l.previous = 'QUEUED' AND p_status = 'IN_PROGRESS' THEN now()
                              ELSE e.started_at END
        FROM locked l  -- at most one row: the key below is the whole primary key
        WHERE e.tenant_id = current_setting('jobs.tenant_id', true)
          AND e.device_id = current_setting('jobs.device_id', true)
          AND e.job_id = p_job_id
        RETURNING e.status, e.execution_number
    )
    SELECT f.status, f.execution_number, f.claimable, u.status, u.execution_number
    INTO found_status, found_number, claimable, status, execution_number
    FROM found f LEFT JOIN updated u ON true;

    IF status IS NULL OR NOT p_terminal THEN
        RETURN;
    END IF;
    -- The last execution to finish completes the job, at a cost independent of the job's
    -- size: the counts are kept per slot (at most 16 rows a job) by triggers. Concurrent
    -- finishers each update their own slot row, so a finisher that drained its slot takes
    -- the job row's lock before checking; whoever locks last sees every other finisher's
    -- slot committed (each statement here takes a fresh snapshot).
    PERFORM 1
    FROM jobs j
    WHERE j.tenant_id = current_setting('jobs.tenant_id', true)
      AND j.job_id = p_job_id
      AND j.status = 'IN_PROGRESS'
      AND EXISTS (
          SELECT 1
          FROM job_executions e
          JOIN job_execution_counts c ON c.tenant_id = e.tenant_id AND c.job_id = e.job_id AND c.slot = e.slot
          WHERE e.tenant_id = j.tenant_id AND e.job_id = j.job_id
            AND e.device_id = current_setting('jobs.device_id', true)
            AND c.queued + c.in_progress = 0)
    FOR UPDATE OF j;
    IF FOUND THEN
        UPDATE jobs j
        SET status = 'COMPLETED', updated_at = now()
        WHERE j.tenant_id = current_setting('jobs.tenant_id', true)
          AND j.job_id = p_job_id
          AND j.status = 'IN_PROGRESS'  -- a CANCELED job is never completed
          AND NOT EXISTS (
              SELECT 1 FROM job_execution_counts c
              WHERE c.tenant_id = j.tenant_id AND c.job_id = j.job_id AND c.queued + c.in_progress > 0);
    END IF;
END $$;

REVOKE ALL ON FUNCTION device_scope(text), device_pending(text, integer), device_describe(text, text),
    device_update(text, text, text, text[], integer, jsonb, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION device_scope(text), device_pending(text, integer), device_describe(text, text),
    device_update(text, text, text, text[], integer, jsonb, boolean) TO jobs_runtime;
