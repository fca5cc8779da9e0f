-- Firmware delivery: job templates (a document and the job settings, reused by many jobs), and
-- what a job keeps of its presigned URLs. A job created from a template copies what it takes:
-- deleting the template leaves its jobs as they are (no foreign key).
--
-- Quick on a large table: a new table, nullable columns without a default (no rewrite), no scan.

CREATE TABLE job_templates (
    tenant_id             text NOT NULL,
    template_id           text NOT NULL CHECK (template_id ~ '^[A-Za-z0-9_-]{1,64}$'),
    document_type         text NOT NULL,
    document_params       jsonb NOT NULL,
    description           text CHECK (length(description) <= 2028),
    timeout_minutes       integer,
    retry                 jsonb,
    rollout               jsonb,
    abort                 jsonb,
    presigned_url_config  jsonb,
    created_at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, template_id)
);
ALTER TABLE job_templates ENABLE ROW LEVEL SECURITY;
ALTER TABLE job_templates FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON job_templates TO jobs_runtime
    USING (tenant_id = current_setting('jobs.tenant_id', true));
GRANT SELECT, INSERT, DELETE ON job_templates TO jobs_runtime;

-- template_id: the template the job was created from (it may be gone since);
-- presign_ttl: how long the presigned URLs a device reads in the document are valid, in seconds;
-- NULL when the document has no presigned-URL placeholder (a device read then signs nothing).
-- The CHECK is NOT VALID: every existing row is NULL, and validating would scan the table under
-- this statement's exclusive lock (0.35 s for 2 million jobs); new rows are checked all the same.
ALTER TABLE jobs
    ADD COLUMN template_id text,
    ADD COLUMN presigned_url_config jsonb,
    ADD COLUMN presign_ttl integer,
    ADD CONSTRAINT jobs_presign_ttl CHECK (presign_ttl BETWEEN 60 AND 3600) NOT VALID;
