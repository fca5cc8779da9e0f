-- The fleet through the API: device attributes and a registry version; provision tokens in a
-- table of their own (a device has none, one, or during a rotation's overlap two); groups as rows
-- of their own, with a description and a device count kept by triggers; and REMOVED, the terminal
-- status of an execution whose device left (was deleted) before it finished.
--
-- Quick on a large table: columns with constant defaults (no rewrite), new tables filled from the
-- registry, CHECKs and a foreign key added NOT VALID then validated (scans that do not block
-- writes).

-- Devices: attributes (a flat map of strings) and the version AWS's UpdateThing compares.
ALTER TABLE device_state
    ADD COLUMN attributes jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(attributes) = 'object'),
    ADD COLUMN version bigint NOT NULL DEFAULT 1;
-- ListThings / GET /customer/devices?attribute=name:value
CREATE INDEX device_state_attributes ON device_state USING gin (attributes jsonb_path_ops);

-- Tokens: a device call finds its device by the token's hash alone (the primary key: one index
-- read), valid while expires_at is NULL (the current token) or in the future (the token a
-- rotation replaced, during its overlap). No schedule has to end the overlap: the lookup does.
CREATE TABLE device_tokens (
    token_hash  text PRIMARY KEY,
    tenant_id   text NOT NULL,
    device_id   text NOT NULL,
    issued_at   timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    FOREIGN KEY (tenant_id, device_id) REFERENCES device_state ON DELETE CASCADE
);
CREATE INDEX device_tokens_of_device ON device_tokens (tenant_id, device_id);
-- At most one current token a device.
CREATE UNIQUE INDEX device_tokens_current ON device_tokens (tenant_id, device_id) WHERE expires_at IS NULL;
INSERT INTO device_tokens (token_hash, tenant_id, device_id, issued_at)
SELECT token_hash, tenant_id, device_id, created_at FROM device_state;

ALTER TABLE device_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE device_tokens FORCE ROW LEVEL SECURITY;
-- A device authenticates before its tenant is known: it may read the one token row whose hash it
-- presents (jobs.token_hash), nothing more; an operator, the tokens of its tenant.
CREATE POLICY tenant_isolation ON device_tokens TO jobs_runtime
    USING (tenant_id = current_setting('jobs.tenant_id', true)
           OR token_hash = current_setting('jobs.token_hash', true))
    WITH CHECK (tenant_id = current_setting('jobs.tenant_id', true));
GRANT SELECT, INSERT, UPDATE, DELETE ON device_tokens TO jobs_runtime;

-- The registry row is the tenant's alone now; the token's hash is not in it any more.
DROP POLICY tenant_isolation ON device_state;
CREATE POLICY tenant_isolation ON device_state TO jobs_runtime
    USING (tenant_id = current_setting('jobs.tenant_id', true));
ALTER TABLE device_state DROP COLUMN token_hash;

-- Groups: one row each, with its description and how many devices it has (kept by triggers on
-- its memberships, in the same transaction: a describe reads one row, whatever the group's size).
CREATE TABLE device_groups (
    tenant_id     text NOT NULL,
    group_id      text NOT NULL CHECK (group_id ~ '^[A-Za-z0-9:_-]{1,128}$'),
    description   text CHECK (length(description) <= 2028),
    device_count  bigint NOT NULL DEFAULT 0,
    version       bigint NOT NULL DEFAULT 1,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, group_id)
);
INSERT INTO device_groups (tenant_id, group_id, device_count)
SELECT tenant_id, group_id, count(*) FROM device_group_members GROUP BY tenant_id, group_id;
ALTER TABLE device_groups ENABLE ROW LEVEL SECURITY;
ALTER TABLE device_groups FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON device_groups TO jobs_runtime
    USING (tenant_id = current_setting('jobs.tenant_id', true));
GRANT SELECT, INSERT, UPDATE, DELETE ON device_groups TO jobs_runtime;

ALTER TABLE device_group_members
    ADD CONSTRAINT device_group_members_group FOREIGN KEY (tenant_id, group_id) REFERENCES device_groups
        ON DELETE CASCADE NOT VALID;
ALTER TABLE device_group_members VALIDATE CONSTRAINT device_group_members_group;
-- A device's groups (describe, ListThingGroupsForThing), and its memberships' cascade on delete.
CREATE INDEX device_group_members_by_device ON device_group_members (tenant_id, device_id, group_id);

-- The triggers' function, as sql/fleet.sql has it (re-applied from there by every migrate).
CREATE OR REPLACE FUNCTION count_members() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    sign constant integer := TG_ARGV[0]::integer;
BEGIN
    -- locked in one order by every writer; NO KEY UPDATE, as the UPDATE below takes, waits for no
    -- foreign key check (KEY SHARE) of another membership change
    PERFORM 1 FROM device_groups g
    WHERE (g.tenant_id, g.group_id) IN (SELECT tenant_id, group_id FROM changed)
    ORDER BY g.tenant_id, g.group_id FOR NO KEY UPDATE OF g;
    UPDATE device_groups g
    SET device_count = g.device_count + sign * n.members
    FROM (SELECT tenant_id, group_id, count(*) AS members FROM changed GROUP BY tenant_id, group_id) n
    WHERE g.tenant_id = n.tenant_id AND g.group_id = n.group_id;
    RETURN NULL;
END $$;

CREATE TRIGGER device_group_members_counted_insert
    AFTER INSERT ON device_group_members
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION count_members('1');
CREATE TRIGGER device_group_members_counted_delete
    AFTER DELETE ON device_group_members
    REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION count_members('-1');

-- REMOVED: terminal, counted like every status.
ALTER TABLE job_executions
    ADD CONSTRAINT job_executions_status_listed CHECK (status IN ('UNRELEASED', 'QUEUED', 'IN_PROGRESS',
        'SUCCEEDED', 'FAILED', 'REJECTED', 'TIMED_OUT', 'CANCELED', 'REMOVED')) NOT VALID;
ALTER TABLE job_executions DROP CONSTRAINT job_executions_status_known;
ALTER TABLE job_executions VALIDATE CONSTRAINT job_executions_status_listed;
ALTER TABLE job_execution_counts ADD COLUMN removed integer NOT NULL DEFAULT 0;
