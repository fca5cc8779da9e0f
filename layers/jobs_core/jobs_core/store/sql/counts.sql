-- Per-job execution counts by status (job_execution_counts: up to 16 slot rows a job), kept exact
-- by statement-level triggers on job_executions, in the same transaction as every change. The
-- triggers are the migrations' (0001); their functions are here.
--
-- Re-applied by `migrate` after the versioned migrations (see device_calls.sql for the rules).

CREATE OR REPLACE FUNCTION count_execution_changes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- One row per (job, slot) touched by the statement, with the net change of each status.
    WITH changes AS (
        SELECT tenant_id, job_id, slot, status, 1 AS delta FROM new_rows
        UNION ALL
        SELECT o.tenant_id, o.job_id, o.slot, o.status, -1
        FROM old_rows o
    ), net AS (
        SELECT tenant_id, job_id, slot,
               coalesce(sum(delta) FILTER (WHERE status = 'UNRELEASED'), 0)  AS unreleased,
               coalesce(sum(delta) FILTER (WHERE status = 'QUEUED'), 0)      AS queued,
               coalesce(sum(delta) FILTER (WHERE status = 'IN_PROGRESS'), 0) AS in_progress,
               coalesce(sum(delta) FILTER (WHERE status = 'SUCCEEDED'), 0)   AS succeeded,
               coalesce(sum(delta) FILTER (WHERE status = 'FAILED'), 0)      AS failed,
               coalesce(sum(delta) FILTER (WHERE status = 'REJECTED'), 0)    AS rejected,
               coalesce(sum(delta) FILTER (WHERE status = 'TIMED_OUT'), 0)   AS timed_out,
               coalesce(sum(delta) FILTER (WHERE status = 'CANCELED'), 0)    AS canceled,
               coalesce(sum(delta) FILTER (WHERE status = 'REMOVED'), 0)     AS removed
        FROM changes
        GROUP BY tenant_id, job_id, slot
    )
    INSERT INTO job_execution_counts AS c
        (tenant_id, job_id, slot, unreleased, queued, in_progress, succeeded, failed, rejected, timed_out, canceled,
         removed)
    SELECT * FROM net
    WHERE (unreleased, queued, in_progress, succeeded, failed, rejected, timed_out, canceled, removed)
          <> (0, 0, 0, 0, 0, 0, 0, 0, 0)
    ORDER BY tenant_id, job_id, slot  -- one lock order for every writer
    ON CONFLICT (tenant_id, job_id, slot) DO UPDATE SET
        unreleased  = c.unreleased  + excluded.unreleased,
        queued      = c.queued      + excluded.queued,
        in_progress = c.in_progress + excluded.in_progress,
        succeeded   = c.succeeded   + excluded.succeeded,
        failed      = c.failed      + excluded.failed,
        rejected    = c.rejected    + excluded.rejected,
        timed_out   = c.timed_out   + excluded.timed_out,
        canceled    = c.canceled    + excluded.canceled,
        removed     = c.removed     + excluded.removed;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION count_new_executions() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- a new execution is QUEUED, or UNRELEASED when its job holds it back
    INSERT INTO job_execution_counts AS c (tenant_id, job_id, slot, unreleased, queued)
    SELECT tenant_id, job_id, slot, count(*) FILTER (WHERE status = 'UNRELEASED'),
           count(*) FILTER (WHERE status = 'QUEUED')
    FROM new_rows
    GROUP BY tenant_id, job_id, slot
    ORDER BY tenant_id, job_id, slot
    ON CONFLICT (tenant_id, job_id, slot) DO UPDATE SET
        unreleased = c.unreleased + excluded.unreleased,
        queued     = c.queued     + excluded.queued;
    RETURN NULL;
END $$;
