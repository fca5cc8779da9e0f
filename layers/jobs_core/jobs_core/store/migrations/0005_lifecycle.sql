-- Executions that cannot hang: in-progress and step timeouts, retries, the operator's force
-- cancel (a running execution it ends is CANCELED), one device's execution canceled alone.
--
-- Quick on a large table: new columns with constant defaults (no rewrite), a new table, a
-- CHECK added NOT VALID and then validated (a scan that does not block writes).

ALTER TABLE jobs
    ADD COLUMN timeout_minutes integer CHECK (timeout_minutes BETWEEN 1 AND 10080),
    ADD COLUMN retry jsonb,  -- the criteria as the operator gave them, for display
    -- what they allow: retries of a FAILED and of a TIMED_OUT attempt, and whether the two draw
    -- on one budget (an ALL criterion alone)
    ADD COLUMN retries_failed smallint NOT NULL DEFAULT 0 CHECK (retries_failed BETWEEN 0 AND 10),
    ADD COLUMN retries_timed_out smallint NOT NULL DEFAULT 0 CHECK (retries_timed_out BETWEEN 0 AND 10),
    ADD COLUMN retries_shared boolean NOT NULL DEFAULT false;

ALTER TABLE job_executions
    ADD COLUMN attempt integer NOT NULL DEFAULT 1,  -- AWS's executionNumber; execution_number is the version
    ADD COLUMN retried_failed smallint NOT NULL DEFAULT 0,
    ADD COLUMN retried_timed_out smallint NOT NULL DEFAULT 0,
    ADD COLUMN step_timeout_at timestamptz,  -- the device's last step timeout
    ADD COLUMN timeout_at timestamptz,       -- the earlier of the in-progress and the step deadline
    ADD CONSTRAINT job_executions_status_is_known CHECK (status IN ('QUEUED', 'IN_PROGRESS', 'SUCCEEDED',
        'FAILED', 'REJECTED', 'TIMED_OUT', 'CANCELED')) NOT VALID;
ALTER TABLE job_executions DROP CONSTRAINT job_executions_status_check;
ALTER TABLE job_executions VALIDATE CONSTRAINT job_executions_status_is_known;

ALTER TABLE job_execution_counts ADD COLUMN canceled integer NOT NULL DEFAULT 0;

-- The outcome of every attempt that was retried; the execution row holds the current one.
-- Rows are written once and never changed.
CREATE TABLE job_execution_attempts (
    tenant_id       text NOT NULL,
    job_id          text NOT NULL,
    device_id       text NOT NULL,
    attempt         integer NOT NULL,
    status          text NOT NULL CHECK (status IN ('FAILED', 'TIMED_OUT')),
    status_details  jsonb,
    started_at      timestamptz,
    finished_at     timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, job_id, device_id, attempt),
    FOREIGN KEY (tenant_id, job_id, device_id) REFERENCES job_executions ON DELETE CASCADE
);
ALTER TABLE job_execution_attempts ENABLE ROW LEVEL SECURITY;
ALTER TABLE job_execution_attempts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON job_execution_attempts TO jobs_runtime
    USING (tenant_id = current_setting('jobs.tenant_id', true));
CREATE POLICY sweep ON job_execution_attempts TO jobs_sweeper USING (true);
GRANT SELECT, INSERT ON job_execution_attempts TO jobs_runtime, jobs_sweeper;

-- 0003's shape of device_update, kept for the containers of that version during the last
-- deploy, is retired.
DROP FUNCTION IF EXISTS device_update(text, text, text, text[], integer, jsonb, boolean);
