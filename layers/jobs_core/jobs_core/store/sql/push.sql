-- Push (domain/notifications.py): the outbox's trigger function and the drain's read.
--
-- Re-applied by `migrate` after the versioned migrations (see device_calls.sql for the rules).

-- One function for the three statement-level triggers of job_executions (0010): a row in the
-- outbox for each execution whose status moved into QUEUED or out of QUEUED or IN_PROGRESS: the
-- head of its device's queue (its next execution, or its lists) may have changed. Run as the
-- statement's role: the runtime writes rows of the tenant it is scoped to, the sweeper any.
CREATE OR REPLACE FUNCTION push_executions_changed() RETURNS trigger
LANGUAGE plpgsql
-- An UPDATE of 100,000 executions (a cancel, a sweep) pairs 100,000 old rows with their new ones:
-- a hash join in memory, whatever the size. PL/pgSQL keeps the plan a session made first (a device
-- call's one row: a nested loop, which a 10,000-row sweep batch then ran for seconds), so the join
-- is one hash join for every size, without JIT compilation to pay for first.
SET work_mem = '64MB' SET jit = off SET enable_mergejoin = off SET enable_nestloop = off
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO push_outbox (tenant_id, device_id)
        SELECT n.tenant_id, n.device_id FROM new_rows n WHERE n.status = 'QUEUED';
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO push_outbox (tenant_id, device_id)
        SELECT n.tenant_id, n.device_id
        FROM new_rows n
        JOIN old_rows o ON o.tenant_id = n.tenant_id AND o.job_id = n.job_id AND o.device_id = n.device_id
        WHERE n.status <> o.status AND (n.status = 'QUEUED' OR o.status IN ('QUEUED', 'IN_PROGRESS'));
    ELSE
        INSERT INTO push_outbox (tenant_id, device_id)
        SELECT o.tenant_id, o.device_id FROM old_rows o WHERE o.status IN ('QUEUED', 'IN_PROGRESS');
    END IF;
    RETURN NULL;
END $$;

-- Take up to p_limit rows of the outbox, oldest first, passing over those another drain holds
-- (deleted with this transaction: its caller publishes, then commits, or rolls back and the rows
-- are there again), and read each device's queue as it is now: its next execution (AWS's $next:
-- its IN_PROGRESS one, else its oldest claimable QUEUED one) with the job's document, and its
-- IN_PROGRESS and QUEUED lists, at most p_list_limit of each. One row a device; `taken` is the
-- number of outbox rows taken (a device may have had several).
CREATE OR REPLACE FUNCTION push_take(p_limit integer, p_list_limit integer)
RETURNS TABLE (tenant_id text, device_id text, at timestamptz, taken bigint, next json, in_progress json,
               queued json)
LANGUAGE sql AS $$
    WITH taken AS (
        DELETE FROM push_outbox o
        WHERE o.id IN (SELECT b.id FROM push_outbox b ORDER BY b.id LIMIT p_limit FOR UPDATE SKIP LOCKED)
        RETURNING o.tenant_id, o.device_id
    ), devices AS (
        SELECT DISTINCT t.tenant_id, t.device_id FROM taken t
    )
    SELECT d.tenant_id, d.device_id, now(), (SELECT count(*) FROM taken),
           coalesce(
               (SELECT execution_json(e, j)
                FROM job_executions e JOIN jobs j ON j.tenant_id = e.tenant_id AND j.job_id = e.job_id
                WHERE e.tenant_id = d.tenant_id AND e.device_id = d.device_id AND e.status = 'IN_PROGRESS'
                ORDER BY e.started_at, e.job_id
                LIMIT 1),
               (SELECT execution_json(e, j)
                FROM job_executions e JOIN jobs j ON j.tenant_id = e.tenant_id AND j.job_id = e.job_id
                WHERE e.tenant_id = d.tenant_id AND e.device_id = d.device_id AND e.status = 'QUEUED'
                  AND job_claimable(j.status, j.expires_at)
                ORDER BY e.queued_at, e.job_id
                LIMIT 1)),
           (SELECT coalesce(json_agg(execution_summary_json(p) ORDER BY p.started_at, p.job_id), '[]')
            FROM (SELECT e.* FROM job_executions e
                  WHERE e.tenant_id = d.tenant_id AND e.device_id = d.device_id AND e.status = 'IN_PROGRESS'
                  ORDER BY e.started_at, e.job_id
                  LIMIT p_list_limit) p),
           (SELECT coalesce(json_agg(execution_summary_json(q) ORDER BY q.queued_at, q.job_id), '[]')
            FROM (SELECT e.* FROM job_executions e
                  JOIN jobs j ON j.tenant_id = e.tenant_id AND j.job_id = e.job_id
                  WHERE e.tenant_id = d.tenant_id AND e.device_id = d.device_id AND e.status = 'QUEUED'
                    AND job_claimable(j.status, j.expires_at)
                  ORDER BY e.queued_at, e.job_id
                  LIMIT p_list_limit) q)
    FROM devices d
$$;

-- Who a token is, for the brokers (the embedded one, IoT Core's custom authorizer): the device
-- whose valid token it is, NULLs if none. As device_scope decides for every device call.
CREATE OR REPLACE FUNCTION device_identity(p_token_hash text, OUT tenant_id text, OUT device_id text)
LANGUAGE plpgsql
SET role = 'jobs_runtime' SET lock_timeout = '2500ms' SET TimeZone = 'UTC'  -- see device_calls.sql
AS $$
BEGIN
    SELECT d.tenant_id, d.device_id INTO tenant_id, device_id FROM device_scope(p_token_hash) d;
END $$;

REVOKE ALL ON FUNCTION push_executions_changed(), push_take(integer, integer), device_identity(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION push_executions_changed() TO jobs_runtime, jobs_sweeper;
GRANT EXECUTE ON FUNCTION push_take(integer, integer) TO jobs_sweeper;
GRANT EXECUTE ON FUNCTION execution_json(job_executions, jobs), execution_summary_json(job_executions),
    job_claimable(text, timestamptz), seconds_until(timestamptz) TO jobs_sweeper;
GRANT EXECUTE ON FUNCTION device_identity(text) TO jobs_runtime;
