-- Targets that follow the fleet: a job's targets as rows of their own (several devices and groups,
-- or every device), and whether they are a snapshot or continuous (AWS's targetSelection). A
-- continuous job's targets are found from a membership change or a registration by one read of an
-- index over the continuous ones: no scan of a group or of the fleet, ever.
--
-- Quick on a large table: a column with a constant default (no rewrite), a new table filled from
-- the jobs' own target columns (one row a job).

ALTER TABLE jobs
    ADD COLUMN target_selection text NOT NULL DEFAULT 'SNAPSHOT'
        CHECK (target_selection IN ('SNAPSHOT', 'CONTINUOUS'));

CREATE TABLE job_targets (
    tenant_id   text NOT NULL,
    job_id      text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('device', 'group', 'all')),
    target_id   text NOT NULL DEFAULT '' CHECK ((kind = 'all') = (target_id = '')),
    continuous  boolean NOT NULL DEFAULT false,  -- the job's target_selection, for the index below
    PRIMARY KEY (tenant_id, job_id, kind, target_id),
    FOREIGN KEY (tenant_id, job_id) REFERENCES jobs ON DELETE CASCADE
);
INSERT INTO job_targets (tenant_id, job_id, kind, target_id)
SELECT tenant_id, job_id,
       CASE WHEN target_device_id IS NOT NULL THEN 'device' WHEN target_group_id IS NOT NULL THEN 'group' ELSE 'all' END,
       coalesce(target_device_id, target_group_id, '')
FROM jobs;

-- The jobs that target a group or a device (ListJobs by thingGroupName), and the continuous ones
-- by what they target (a device joining a group, registered, or leaving).
CREATE INDEX job_targets_by_target ON job_targets (tenant_id, kind, target_id);
CREATE INDEX job_targets_continuous ON job_targets (tenant_id, kind, target_id, job_id) WHERE continuous;

ALTER TABLE job_targets ENABLE ROW LEVEL SECURITY;
ALTER TABLE job_targets FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON job_targets TO jobs_runtime
    USING (tenant_id = current_setting('jobs.tenant_id', true));
CREATE POLICY sweep ON job_targets TO jobs_sweeper USING (true);
GRANT SELECT, INSERT, DELETE ON job_targets TO jobs_runtime;
GRANT SELECT ON job_targets TO jobs_sweeper;
