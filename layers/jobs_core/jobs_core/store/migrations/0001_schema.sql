-- The jobs service schema: devices, groups, jobs and their executions, with
-- tenant isolation enforced by row-level security.
--
-- Roles: the Lambdas run as jobs_runtime, which owns nothing and sees one tenant
-- (the one named by the transaction-local setting jobs.tenant_id); the sweep runs
-- as jobs_sweeper, which sees every tenant's jobs and executions and nothing else.

DO $$
BEGIN
    CREATE ROLE jobs_runtime NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;  -- roles are cluster-wide
END $$;

DO $$
BEGIN
    CREATE ROLE jobs_sweeper NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;

-- The device registry. Tokens are stored only as a SHA-256 hash (hex): a token is
-- 256 random bits, so a fast hash is enough, and the lookup stays one index probe.
CREATE TABLE device_state (
    tenant_id   text NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 128),
    device_id   text NOT NULL CHECK (length(device_id) BETWEEN 1 AND 128),
    token_hash  text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, device_id)
);

CREATE TABLE device_group_members (
    tenant_id  text NOT NULL,
    group_id   text NOT NULL CHECK (length(group_id) BETWEEN 1 AND 128),
    device_id  text NOT NULL,
    PRIMARY KEY (tenant_id, group_id, device_id),
    FOREIGN KEY (tenant_id, device_id) REFERENCES device_state ON DELETE CASCADE
);

CREATE TABLE jobs (
    tenant_id         text NOT NULL,
    job_id            text NOT NULL CHECK (job_id ~ '^[A-Za-z0-9_-]{1,64}$'),
    document_type     text NOT NULL,
    document_params   jsonb NOT NULL DEFAULT '{}',
    status            text NOT NULL DEFAULT 'IN_PROGRESS'
                      CHECK (status IN ('IN_PROGRESS', 'COMPLETED', 'CANCELED')),
    target_device_id  text,
    target_group_id   text,
    target_all        boolean NOT NULL DEFAULT false,
    expires_at        timestamptz,
    created_by        text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, job_id)
);
CREATE INDEX jobs_newest_first ON jobs (tenant_id, created_at DESC, job_id);
-- The sweep's way in: jobs whose deadline has passed.
CREATE INDEX jobs_expiring ON jobs (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE job_executions (
    tenant_id         text NOT NULL,
    job_id            text NOT NULL,
    device_id         text NOT NULL,
    status            text NOT NULL DEFAULT 'QUEUED'
                      CHECK (status IN ('QUEUED', 'IN_PROGRESS', 'SUCCEEDED', 'FAILED',
                                        'REJECTED', 'TIMED_OUT')),
    status_details    jsonb,
    execution_number  integer NOT NULL DEFAULT 1,
    -- Which of the job's count rows this execution is tallied in (see job_execution_counts).
    slot              smallint NOT NULL DEFAULT floor(random() * 16),
    queued_at         timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz,
    last_updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, job_id, device_id),
    FOREIGN KEY (tenant_id, job_id) REFERENCES jobs ON DELETE CASCADE
);
-- A device's pending queue, oldest first: only QUEUED rows are in it.
CREATE INDEX job_executions_pending ON job_executions (tenant_id, device_id, queued_at, job_id)
    WHERE status = 'QUEUED';
-- The executions still running of a job, for the sweep and for cancel.
CREATE INDEX job_executions_active ON job_executions (tenant_id, job_id)
    WHERE status IN ('QUEUED', 'IN_PROGRESS');

-- Per-job execution counts by status, spread over up to 16 rows per job (one per
-- slot) so devices finishing one big job at once do not queue on one hot row.
-- Kept exact by the triggers below, in the same transaction as every change.
CREATE TABLE job_execution_counts (
    tenant_id    text NOT NULL,
    job_id       text NOT NULL,
    slot         smallint NOT NULL,
    queued       integer NOT NULL DEFAULT 0,
    in_progress  integer NOT NULL DEFAULT 0,
    succeeded    integer NOT NULL DEFAULT 0,
    failed       integer NOT NULL DEFAULT 0,
    rejected     integer NOT NULL DEFAULT 0,
    timed_out    integer NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, job_id, slot),
    FOREIGN KEY (tenant_id, job_id) REFERENCES jobs ON DELETE CASCADE
);

CREATE FUNCTION count_execution_changes() RETURNS trigger
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
               coalesce(sum(delta) FILTER (WHERE status = 'QUEUED'), 0)      AS queued,
               coalesce(sum(delta) FILTER (WHERE status = 'IN_PROGRESS'), 0) AS in_progress,
               coalesce(sum(delta) FILTER (WHERE status = 'SUCCEEDED'), 0)   AS succeeded,
               coalesce(sum(delta) FILTER (WHERE status = 'FAILED'), 0)      AS failed,
               coalesce(sum(delta) FILTER (WHERE status = 'REJECTED'), 0)    AS rejected,
               coalesce(sum(delta) FILTER (WHERE status = 'TIMED_OUT'), 0)   AS timed_out
        FROM changes
        GROUP BY tenant_id, job_id, slot
    )
    INSERT INTO job_execution_counts AS c
        (tenant_id, job_id, slot, queued, in_progress, succeeded, failed, rejected, timed_out)
    SELECT * FROM net
    WHERE (queued, in_progress, succeeded, failed, rejected, timed_out) <> (0, 0, 0, 0, 0, 0)
    ORDER BY tenant_id, job_id, slot  -- one lock order for every writer
    ON CONFLICT (tenant_id, job_id, slot) DO UPDATE SET
        queued      = c.queued      + excluded.queued,
        in_progress = c.in_progress + excluded.in_progress,
        succeeded   = c.succeeded   + excluded.succeeded,
        failed      = c.failed      + excluded.failed,
        rejected    = c.rejected    + excluded.rejected,
        timed_out   = c.timed_out   + excluded.timed_out;
    RETURN NULL;
END $$;

CREATE FUNCTION count_new_executions() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_execution_counts AS c (tenant_id, job_id, slot, queued)
    SELECT tenant_id, job_id, slot, count(*) FROM new_rows
    GROUP BY tenant_id, job_id, slot
    ORDER BY tenant_id, job_id, slot
    ON CONFLICT (tenant_id, job_id, slot) DO UPDATE SET queued = c.queued + excluded.queued;
    RETURN NULL;
END $$;

CREATE TRIGGER job_executions_counted_insert
    AFTER INSERT ON job_executions
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_new_executions();

CREATE TRIGGER job_executions_counted_update
    AFTER UPDATE ON job_executions
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_execution_changes();

-- Row-level security: enabled and forced on every tenant table, so even the
-- owner goes through the policies.
ALTER TABLE device_state ENABLE ROW LEVEL SECURITY;
ALTER TABLE device_state FORCE ROW LEVEL SECURITY;
ALTER TABLE device_group_members ENABLE ROW LEVEL SECURITY;
ALTER TABLE device_group_members FORCE ROW LEVEL SECURITY;
ALTER TABLE jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE jobs FORCE ROW LEVEL SECURITY;
ALTER TABLE job_executions ENABLE ROW LEVEL SECURITY;
ALTER TABLE job_executions FORCE ROW LEVEL SECURITY;
ALTER TABLE job_execution_counts ENABLE ROW LEVEL SECURITY;
ALTER TABLE job_execution_counts FORCE ROW LEVEL SECURITY;

-- A device authenticates before its tenant is known: it may read the one
-- registry row whose token hash it presents (jobs.token_hash), nothing more.
CREATE POLICY tenant_isolation ON device_state TO jobs_runtime
    USING (tenant_id = current_setting('jobs.tenant_id', true)
           OR token_hash = current_setting('jobs.token_hash', true))
    WITH CHECK (tenant_id = current_setting('jobs.tenant_id', true));
CREATE POLICY tenant_isolation ON device_group_members TO jobs_runtime
    USING (tenant_id = current_setting('jobs.tenant_id', true));
CREATE POLICY tenant_isolation ON jobs TO jobs_runtime
    USING (tenant_id = current_setting('jobs.tenant_id', true));
CREATE POLICY tenant_isolation ON job_executions TO jobs_runtime
    USING (tenant_id = current_setting('jobs.tenant_id', true));
CREATE POLICY tenant_isolation ON job_execution_counts TO jobs_runtime
    USING (tenant_id = current_setting('jobs.tenant_id', true));

-- The sweep works across tenants, on jobs and executions only.
CREATE POLICY sweep ON jobs TO jobs_sweeper USING (true);
CREATE POLICY sweep ON job_executions TO jobs_sweeper USING (true);
CREATE POLICY sweep ON job_execution_counts TO jobs_sweeper USING (true);

GRANT USAGE ON SCHEMA public TO jobs_runtime, jobs_sweeper;
GRANT SELECT, INSERT, UPDATE, DELETE ON device_state, device_group_members TO jobs_runtime;
GRANT SELECT, INSERT, UPDATE, DELETE ON jobs, job_executions, job_execution_counts TO jobs_runtime;
GRANT SELECT, UPDATE ON jobs, job_executions TO jobs_sweeper;
GRANT SELECT, INSERT, UPDATE ON job_execution_counts TO jobs_sweeper;
