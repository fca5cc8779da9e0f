-- AWS IoT Jobs' own API, the second door to the same tables: what its control plane keeps of a
-- job that ours did not (a description; the reason code and comment of a cancel), an index over
-- each device's executions, for ListJobExecutionsForThing, and one over those in progress (which
-- start-next looked up by scanning the tenant's active executions until now).

ALTER TABLE jobs
    ADD COLUMN description text CHECK (length(description) <= 2028),
    ADD COLUMN reason_code text CHECK (length(reason_code) <= 128),
    ADD COLUMN comment text CHECK (length(comment) <= 2028);

CREATE INDEX job_executions_by_device ON job_executions (tenant_id, device_id, job_id);
-- A device's executions in progress (start-next's first look, GetPendingJobExecutions'
-- inProgressJobs): few rows, so whatever a device ran before costs these lookups nothing.
CREATE INDEX job_executions_in_progress ON job_executions (tenant_id, device_id, started_at, job_id)
    WHERE status = 'IN_PROGRESS';
