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

-- Complete each of these jobs that is IN_PROGRESS and has no active execution left (unreleased,
-- queued or in progress), as read from
-- its count rows (at most 16 a job, kept by triggers), never from its executions. The job rows
-- are locked first, in one order: whoever locks a job last has seen every other writer's counts
-- committed (each statement of a PL/pgSQL function takes a fresh snapshot). A CANCELED job is
-- never completed, nor a continuous one while it follows its targets (until its end_time stops it,
-- or it expires: then it completes as a snapshot job does). Returns how many were completed.
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
      AND (j.target_selection = 'SNAPSHOT' OR j.stop_action IS NOT NULL OR j.expires_at <= now())
      AND NOT EXISTS (
          SELECT 1 FROM job_execution_counts c
          WHERE c.tenant_id = j.tenant_id AND c.job_id = j.job_id
            AND c.unreleased + c.queued + c.in_progress > 0);
    GET DIAGNOSTICS completed = ROW_COUNT;
    RETURN completed;
END $$;

-- Abort each of these jobs whose abort rule its counts now cross: at least
-- min_number_of_executed_things of its executions finished, and the share of them that ended in
-- the rule's failure type (ALL: FAILED, REJECTED or TIMED_OUT) reached threshold_percentage. Read
-- from the job's count rows, never from its executions. As in complete_finished_jobs, the job rows
-- are locked first, in one order, so whoever locks a job last has seen every other writer's
-- counts: of devices finishing at once, the one whose update crosses the threshold in that order
-- is the one that aborts the job, and only one does. A job that expired (as of p_now) is not
-- aborted: it is over already.
--
-- The job is CANCELED at once, with the reason: from then on nothing of it can be claimed. Its
-- QUEUED and UNRELEASED executions are REJECTED with that reason by the schedule, in batches
-- (next_tick_at): rejecting a large job's executions here would make one device's update as slow
-- as the job is large. Returns how many jobs were aborted.
CREATE OR REPLACE FUNCTION abort_crossed_jobs(p_tenant_ids text[], p_job_ids text[], p_now timestamptz)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    aborted integer;
BEGIN
    PERFORM 1
    FROM jobs j
    WHERE (j.tenant_id, j.job_id) IN (SELECT * FROM unnest(p_tenant_ids, p_job_ids))
      AND j.status = 'IN_PROGRESS' AND j.abort IS NOT NULL
    ORDER BY j.tenant_id, j.job_id
    FOR UPDATE OF j;

    WITH counted AS (
        SELECT j.tenant_id, j.job_id, j.abort, n.*
        FROM jobs j
        CROSS JOIN LATERAL (
            SELECT coalesce(sum(c.succeeded + c.failed + c.rejected + c.timed_out + c.canceled), 0) AS finished,
                   coalesce(sum(c.failed), 0) AS failed, coalesce(sum(c.rejected), 0) AS rejected,
                   coalesce(sum(c.timed_out), 0) AS timed_out
            FROM job_execution_counts c
            WHERE c.tenant_id = j.tenant_id AND c.job_id = j.job_id
        ) n
        WHERE (j.tenant_id, j.job_id) IN (SELECT * FROM unnest(p_tenant_ids, p_job_ids))
          AND j.status = 'IN_PROGRESS' AND j.abort IS NOT NULL
          AND (j.expires_at IS NULL OR j.expires_at > p_now)
    ), crossed AS (
        SELECT DISTINCT ON (k.tenant_id, k.job_id) k.tenant_id, k.job_id, k.finished, x.failures,
               r.rule->>'failure_type' AS failure_type, (r.rule->>'threshold_percentage')::numeric AS threshold,
               (r.rule->>'min_number_of_executed_things')::bigint AS minimum
        FROM counted k
        CROSS JOIN LATERAL jsonb_array_elements(k.abort) r(rule)
        CROSS JOIN LATERAL (
            SELECT CASE r.rule->>'failure_type'
                       WHEN 'FAILED' THEN k.failed
                       WHEN 'REJECTED' THEN k.rejected
                       WHEN 'TIMED_OUT' THEN k.timed_out
                       ELSE k.failed + k.rejected + k.timed_out
                   END AS failures
        ) x
        WHERE k.finished >= (r.rule->>'min_number_of_executed_things')::bigint
          AND x.failures * 100 >= (r.rule->>'threshold_percentage')::numeric * k.finished
        ORDER BY k.tenant_id, k.job_id
    )
    UPDATE jobs j
    SET status = 'CANCELED', updated_at = p_now, stopped_at = p_now, next_tick_at = p_now, next_release_at = NULL,
        stop_action = 'CANCEL',
        stop_reason = format('aborted: %s of %s finished executions %s (%s%%), the rule is %s%% of at least %s',
                             c.failures, c.finished, c.failure_type, round(c.failures * 100.0 / c.finished, 1),
                             trim_scale(c.threshold), c.minimum)
    FROM crossed c
    WHERE j.tenant_id = c.tenant_id AND j.job_id = c.job_id AND j.status = 'IN_PROGRESS';
    GET DIAGNOSTICS aborted = ROW_COUNT;
    RETURN aborted;
END $$;

REVOKE ALL ON FUNCTION job_claimable(text, timestamptz), complete_finished_jobs(text[], text[]),
    seconds_until(timestamptz), abort_crossed_jobs(text[], text[], timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION job_claimable(text, timestamptz), seconds_until(timestamptz) TO jobs_runtime;
GRANT EXECUTE ON FUNCTION complete_finished_jobs(text[], text[]), abort_crossed_jobs(text[], text[], timestamptz)
    TO jobs_runtime, jobs_sweeper;
