-- Push: an outbox of devices whose queue head changed, written by the statement that changed it
-- (in its transaction: what commits is published, what rolls back is not), drained after the
-- commit and by the schedule (domain/notifications.py). A row says only "tell this device": the
-- drain reads the device's queue as it is then, so a duplicate or a late row is harmless.
--
-- One row an execution whose status moved into QUEUED, or out of QUEUED or IN_PROGRESS (created,
-- released, retried, claimed, finished, canceled, timed out, removed, deleted).

CREATE TABLE push_outbox (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id  text NOT NULL,
    device_id  text NOT NULL,
    queued_at  timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE push_outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE push_outbox FORCE ROW LEVEL SECURITY;
-- The runtime only writes, for the tenant its transaction is scoped to; the drain (the sweeper's
-- role, across tenants) reads and deletes.
CREATE POLICY tenant_writes ON push_outbox FOR INSERT TO jobs_runtime
    WITH CHECK (tenant_id = current_setting('jobs.tenant_id', true));
CREATE POLICY drain ON push_outbox TO jobs_sweeper USING (true);
GRANT INSERT ON push_outbox TO jobs_runtime;
GRANT SELECT, INSERT, UPDATE, DELETE ON push_outbox TO jobs_sweeper;  -- UPDATE: FOR UPDATE SKIP LOCKED

-- The triggers' function, as sql/push.sql has it (re-applied from there by every migrate).
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

CREATE TRIGGER job_executions_pushed_insert
    AFTER INSERT ON job_executions
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION push_executions_changed();
CREATE TRIGGER job_executions_pushed_update
    AFTER UPDATE ON job_executions
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION push_executions_changed();
CREATE TRIGGER job_executions_pushed_delete
    AFTER DELETE ON job_executions
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION push_executions_changed();
