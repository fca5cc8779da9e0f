-- The fleet's bookkeeping: each group's device_count, kept exact by statement-level triggers on
-- device_group_members (0008), in the same transaction as every change of a membership (an add,
-- a removal, a device or a group deleted with its memberships).
--
-- Re-applied by `migrate` after the versioned migrations (see device_calls.sql for the rules).

-- One function for both triggers: each names the rows it saw `changed`, and passes +1 (added) or
-- -1 (removed).
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
