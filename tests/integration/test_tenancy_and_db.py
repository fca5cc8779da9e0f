"""What PostgreSQL itself guarantees: row-level security, the runtime role, one round trip per
device call, migrations, and behaviour when the database goes away."""

from __future__ import annotations

import os
import re
import socket
import threading

import psycopg
import pytest

from bench.instruments import RoundTripCounter
from jobs_core.aws import data_plane
from jobs_core.domain import executions
from jobs_core.domain.models import ExecutionUpdate, StartNext
from jobs_core.errors import DatabaseUnavailable
from jobs_core.store.db import Database
from jobs_core.store.migrate import migrate
from tests.factories import POOLED, Admin, CreateJob, Register, container_database, scratch_database
from tests.helpers import invoke

TENANT_TABLES = [
    "device_state",
    "device_tokens",
    "device_groups",
    "device_group_members",
    "jobs",
    "job_executions",
    "job_execution_counts",
]


def test_rls_is_enabled_and_forced_on_every_tenant_table(admin: Admin) -> None:
    rows = admin.execute(
        "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class"
        " WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' AND relname = ANY(%s)",
        [TENANT_TABLES],
    ).fetchall()
    assert sorted(r["relname"] for r in rows) == sorted(TENANT_TABLES)
    assert all(r["relrowsecurity"] and r["relforcerowsecurity"] for r in rows)
    # and every table with a tenant_id, whatever this list says
    unguarded = admin.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id'"
        " WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'"
        " AND NOT (c.relrowsecurity AND c.relforcerowsecurity)"
    ).fetchall()
    assert unguarded == []


def test_the_runtime_role_owns_nothing_and_bypasses_nothing(admin: Admin) -> None:
    owned = admin.execute("SELECT count(*) AS n FROM pg_class WHERE relowner = 'jobs_runtime'::regrole").fetchone()
    assert owned == {"n": 0}
    role = admin.execute(
        "SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = 'jobs_runtime'"
    ).fetchone()
    assert role == {"rolsuper": False, "rolbypassrls": False, "rolcanlogin": False}


def test_the_device_functions_run_as_their_caller_and_only_the_runtime_may_call_them(admin: Admin) -> None:
    rows = admin.execute(
        "SELECT proname, prosecdef,"
        " has_function_privilege('public', oid, 'EXECUTE') AS public,"
        " has_function_privilege('jobs_runtime', oid, 'EXECUTE') AS runtime,"
        " has_function_privilege('jobs_sweeper', oid, 'EXECUTE') AS sweeper"
        " FROM pg_proc WHERE pronamespace = 'public'::regnamespace AND proname LIKE 'device\\_%' ORDER BY proname"
    ).fetchall()
    # (a retired shape, e.g. 0003's device_describe, stays for containers of earlier versions until a
    # later release drops it)
    assert sorted({r["proname"] for r in rows}) == [
        "device_describe",
        "device_execution",
        "device_identity",  # who an MQTT password is (push): the brokers ask
        "device_pending",
        "device_scope",
        "device_start_next",
        "device_update",
    ]
    # SECURITY INVOKER: row-level security applies to what they read and write as to any statement.
    assert all(r["prosecdef"] is False and r["runtime"] and not r["public"] and not r["sweeper"] for r in rows)


def test_a_query_without_tenant_filter_sees_only_the_current_tenant(
    db: Database, tenant: str, other_tenant: str, register: Register, create_job: CreateJob
) -> None:
    register(tenant, 2)
    register(other_tenant, 3)
    create_job(tenant)
    create_job(other_tenant)
    with db.transaction() as conn:
        conn.execute("SELECT set_config('jobs.tenant_id', %s, true)", [tenant])
        seen = {table: conn.execute(f"SELECT DISTINCT tenant_id FROM {table}") for table in TENANT_TABLES}
        who = conn.execute("SELECT current_user AS role")
    assert who.fetchone() == {"role": "jobs_runtime"}
    for table, cursor in seen.items():
        tenants = {row["tenant_id"] for row in cursor.fetchall()}
        assert tenants <= {tenant}, table
    with db.transaction() as conn:  # and with no tenant at all, nothing
        unscoped = conn.execute("SELECT count(*) AS n FROM job_executions")
    assert unscoped.fetchone() == {"n": 0}


@pytest.mark.parametrize(
    "insert",
    [
        "INSERT INTO device_state (tenant_id, device_id) VALUES (%s, 'd')",
        "INSERT INTO device_tokens (tenant_id, device_id, token_hash) VALUES (%s, 'd', 'h')",
        "INSERT INTO device_groups (tenant_id, group_id) VALUES (%s, 'g')",
    ],
)
def test_the_runtime_role_cannot_write_into_another_tenant(
    db: Database, tenant: str, other_tenant: str, insert: str
) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.transaction() as conn:
        conn.execute("SELECT set_config('jobs.tenant_id', %s, true)", [tenant])
        conn.execute(insert, [other_tenant])


@pytest.mark.parametrize("call", ["pending", "describe", "claim", "finish", "start-next", "step timeout"])
def test_each_device_call_is_one_round_trip(
    database_url: str, tenant: str, register: Register, create_job: CreateJob, call: str
) -> None:
    token = register(tenant, 1)["dev-0000"]
    create_job(tenant, job_id="j")
    counter = RoundTripCounter(database_url)
    db = Database(lambda refresh: counter.conninfo)
    db.connection()
    if call == "finish":
        executions.update(db, token, "j", ExecutionUpdate(status="IN_PROGRESS"))
    before = counter.count()

    if call == "pending":
        executions.pending(db, token)
    elif call == "describe":
        executions.describe(db, token, "j")
    elif call == "start-next":
        assert executions.start_next(db, token, StartNext(step_timeout_minutes=5)).execution is not None
    elif call == "step timeout":
        executions.update(db, token, "j", ExecutionUpdate(status="IN_PROGRESS", step_timeout_minutes=5))
    else:
        executions.update(db, token, "j", ExecutionUpdate(status="IN_PROGRESS" if call == "claim" else "SUCCEEDED"))

    assert counter.count() - before == 1
    db.close()
    counter.close()


def test_migrations_are_idempotent_and_safe_when_two_run_at_once(server_url: str) -> None:
    with scratch_database(server_url, "jobs_migrate") as url:
        results: list[object] = [None, None]

        def run(i: int) -> None:
            try:
                results[i] = migrate(url)
            except Exception as exc:
                results[i] = exc

        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(map(str, results)) == [
            "['0001_schema', '0002_runtime_membership', '0003_device_calls', '0004_hardening', '0005_lifecycle',"
            " '0006_rollouts', '0007_aws_api', '0008_fleet', '0009_targets', '0010_push', '0011_templates']",
            "[]",
        ]
        assert migrate(url) == []


def test_an_unreachable_database_is_503_json(tenant: str) -> None:
    down = Database(lambda refresh: "host=127.0.0.1 port=1 dbname=x user=x connect_timeout=1")
    with container_database(down):
        for method, path in [("GET", "/device/v1/jobs/pending"), ("GET", "/customer/jobs")]:
            status, body = invoke(method, path, token="t", claims={"tenant_id": tenant, "sub": "a"})
            assert (status, body) == (503, {"message": "service unavailable, retry later"})


def test_a_broken_connection_is_replaced_on_the_next_call(
    db: Database, admin: Admin, tenant: str, register: Register, create_job: CreateJob
) -> None:
    token = register(tenant, 1)["dev-0000"]
    create_job(tenant, job_id="j")
    conn = db.connection()
    pid = conn.info.backend_pid
    if POOLED:  # the server connections are the pooler's, shared with other tests: cut this client's
        socket.socket(fileno=os.dup(conn.pgconn.socket)).shutdown(socket.SHUT_RDWR)
    else:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])

    with pytest.raises(DatabaseUnavailable):
        executions.pending(db, token)  # this call finds the connection dead: 503, nothing done
    assert [job.job_id for job in executions.pending(db, token).jobs] == ["j"]
    assert db.connection().info.backend_pid != pid


def test_each_transaction_runs_as_the_runtime_role_and_leaves_nothing_on_the_connection(db: Database) -> None:
    probe = (
        "SELECT current_user AS role, current_setting('statement_timeout') AS statement,"
        " current_setting('lock_timeout') AS lock, current_setting('TimeZone') AS zone"
    )
    with db.transaction() as conn:
        inside = conn.execute(probe)
    assert inside.fetchone() == {"role": "jobs_runtime", "statement": "5s", "lock": "2500ms", "zone": "UTC"}
    with db.transaction(role="jobs_sweeper", pipeline=False) as conn:
        assert conn.execute(probe).fetchone() == {
            "role": "jobs_sweeper",
            "statement": "5s",
            "lock": "2500ms",
            "zone": "UTC",
        }
    # The connection itself is as it was opened (the tests' login is a superuser): a pooler
    # could hand it to anyone, and nothing the last transaction set would follow.
    conn = db.connection()
    after = conn.execute(probe).fetchone()
    assert after is not None and after["role"] == conn.info.user and after["statement"] == "0"


def test_every_device_function_the_layer_calls_sets_its_own_role_and_lock_timeout(admin: Admin) -> None:
    called = {
        re.search(r"FROM (\w+)\(", query).group(1)  # type: ignore[union-attr]
        for query in (*_statements(executions), *_statements(data_plane))
    }
    assert called == {
        "device_pending", "device_execution", "device_start_next", "device_update",
        "aws_pending", "aws_execution", "aws_start_next", "aws_update",
    }  # fmt: skip
    rows = admin.execute("SELECT proname, proconfig FROM pg_proc WHERE proname = ANY(%s)", [sorted(called)]).fetchall()
    assert {row["proname"]: row["proconfig"] for row in rows} == {
        name: ["role=jobs_runtime", "lock_timeout=2500ms", "TimeZone=UTC"] for name in called
    }


def _statements(module: object) -> list[str]:
    """The statements a module sends with fetch_one (its upper-case string constants)."""
    return [v for k, v in vars(module).items() if k.isupper() and isinstance(v, str) and v.startswith("SELECT * FROM")]
