-- How the layer opens each operator and sweep transaction (db.transaction): its role, timeouts,
-- time zone and tenant, for this transaction only (set_config's third argument).
--
-- A function, and not the set_config calls themselves in the statement the client sends: RDS
-- Proxy reads what its clients send and pins a client connection to its database connection on a
-- SET or a set_config it sees there, transaction-local or not; it does not look inside functions
-- (AWS's pinning rules for PostgreSQL). Executable by any login (PUBLIC, as functions are by
-- default): it sets nothing its caller could not set itself.
--
-- Re-applied by `migrate` after the versioned migrations (see device_calls.sql for the rules).

CREATE OR REPLACE FUNCTION open_transaction(p_role text, p_statement_timeout text, p_lock_timeout text,
                                            p_tenant_id text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('role', p_role, true), set_config('statement_timeout', p_statement_timeout, true),
            set_config('lock_timeout', p_lock_timeout, true), set_config('TimeZone', 'UTC', true),
            set_config('jobs.tenant_id', p_tenant_id, true);
END $$;
