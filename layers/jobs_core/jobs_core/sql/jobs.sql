-- Rules over a job that more than one caller needs: each exists here once.
--
-- This file is re-applied by `migrate` after the versioned migrations, every time (CREATE OR
-- REPLACE, under the migration lock). Keep each function's arguments and result columns as they
-- are: containers of the previous version call them until they are replaced. A new shape is a new
-- function (or overload); a versioned migration of a later release drops the retired one.

-- Whether a device may claim an execution of this job now: it runs and has not expired.
-- A one-expression SQL function, so the planner inlines it where it is used.
CREATE OR REPLACE FUNCTION job_claimable(p_status text, p_expires_at timestamptz) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT p_status = 'IN_PROGRESS' AND (p_expires_at IS NULL OR p_expires_at > now())
$$;

-- Whole seconds from now until a deadline, never negative; NULL when there is none (AWS's
-- approximateSecondsBeforeTimedOut).
CREATE OR REPLACE FUNCTION seconds_until(p_at timestamptz) RETURNS integer
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN p_at IS NOT NULL THEN greatest(0, ceil(extract(epoch FROM p_at - now())))::integer END
$$;

-- Complete each of these jobs that is IN_PROGRESS and has no active execution left, as read from
-- its count rows (at most 16 a job, kept by triggers), never from its executions. The job rows
-- are locked first, in one order: whoever locks a job last has seen every other writer's counts
-- committed (each statement of a PL/pgSQL function takes a fresh snapshot). A CANCELED job is
-- never completed. Returns how many were completed.
CREATE OR REPLACE FUNCTION complete_finished_jobs(p_tenant_ids text[], p_job_ids text[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    completed integer;
BEGIN
    PERFORM 1
    FROM jobs j
    WHERE (j.tenant_id, j.job_id) IN (SELECT * FROM unnest(p_tenant_ids, p_job_ids))
      AND j.status = 'IN_PROGRESS'
    ORDER BY j.tenant_id, j.job_id
    FOR UPDATE OF j;

    UPDATE jobs j
    SET status = 'COMPLETED', updated_at = now()
    WHERE (j.tenant_id, j.job_id) IN (SELECT * FROM unnest(p_tenant_ids, p_job_ids))
      AND j.status = 'IN_PROGRESS'
      AND NOT EXISTS (
          SELECT 1 FROM job_execution_counts c
          WHERE c.tenant_id = j.tenant_id AND c.job_id = j.job_id AND c.queued + c.in_progress > 0);
    GET DIAGNOSTICS completed = ROW_COUNT;
    RETURN completed;
END $$;

REVOKE ALL ON FUNCTION job_claimable(text, timestamptz), complete_finished_jobs(text[], text[]),
    seconds_until(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION job_claimable(text, timestamptz), seconds_until(timestamptz) TO jobs_runtime;
GRANT EXECUTE ON FUNCTION complete_finished_jobs(text[], text[]) TO jobs_runtime, jobs_sweeper;
