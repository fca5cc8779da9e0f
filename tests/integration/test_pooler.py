"""Through PgBouncer in transaction mode, as through RDS Proxy: a client connection keeps no server
connection, so nothing a request needs may live in the session. The pooler here is the test's
own (Debian's pgbouncer; `make pgbouncer` installs it), in front of the superuser login the tests
use, with one or two server connections shared by every client."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from bench.instruments import all_at_once
from jobs_core.domain import executions, jobs_create, jobs_read
from jobs_core.domain.job_settings import JobCreate
from jobs_core.domain.jobs_read import JobsPage
from jobs_core.domain.models import ExecutionUpdate, PendingJobs, StartNext
from jobs_core.store.db import Database
from jobs_local.pooler import pooled
from tests.factories import Admin, Register


@pytest.fixture
def one_connection(owner_url: str) -> Iterator[str]:
    """A pooler with a single server connection: every client's transactions take turns on it."""
    with pooled(owner_url, pool_size=1) as url:
        yield url


def _tenant_fleet(db: Database, tenant: str, register: Register, n: int = 3) -> dict[str, str]:
    tokens = register(tenant, n)
    for k in range(2):
        jobs_create.create(db, tenant, "op", JobCreate(job_id=f"{tenant}-job-{k}", document_type="x", target_all=True))
    return tokens


PROBE = """
CREATE TABLE IF NOT EXISTS rls_probe_log (role text NOT NULL);
GRANT INSERT ON rls_probe_log TO jobs_runtime;
CREATE OR REPLACE FUNCTION rls_probe() RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    INSERT INTO rls_probe_log VALUES (current_user);
    RETURN true;
END $$;
GRANT EXECUTE ON FUNCTION rls_probe() TO jobs_runtime;
CREATE POLICY rls_probe ON jobs AS RESTRICTIVE TO jobs_runtime USING (rls_probe());
"""


@pytest.fixture
def rls_probe(admin: Admin) -> Iterator[Callable[[], int]]:
    """Counts the rows of `jobs` that row-level security checked: a policy that lets every row
    through and logs each check. Policies bind only the runtime role: a statement run as the
    superuser login checks nothing."""
    admin.execute(PROBE)
    try:
        yield lambda: admin.execute("SELECT count(*) AS n FROM rls_probe_log").fetchone()["n"]  # type: ignore[index]
    finally:
        admin.execute("DROP POLICY rls_probe ON jobs; DROP FUNCTION rls_probe(); DROP TABLE rls_probe_log")


def test_every_request_over_a_superuser_server_connection_runs_under_row_level_security(
    one_connection: str,
    db: Database,
    admin: Admin,
    tenant: str,
    other_tenant: str,
    register: Register,
    rls_probe: Callable[[], int],
) -> None:
    """The pooler logs in as a superuser, whom RLS does not bind; its server connection is
    replaced after the container connected (as when the pooler recycles one), and another client
    leaves that connection's session scoped to the other tenant: each request still runs as the
    runtime role (RLS checks rows), sees its own tenant only, and leaves nothing behind."""
    mine = _tenant_fleet(db, tenant, register)
    _tenant_fleet(db, other_tenant, register)
    backends = "SELECT array_agg(pid) AS pids FROM pg_stat_activity WHERE datname = current_database()"
    others = admin.execute(backends).fetchone()["pids"]  # type: ignore[index]
    container = Database(lambda refresh: one_connection)
    container.connection()  # connected first: no connect-time fix-up can help what follows
    executions.pending(container, mine["dev-0001"])  # the pooler opens its server connection
    # which is replaced by a new one, as when the pooler recycles it
    admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database()"
        " AND backend_type = 'client backend' AND pid <> ALL(%s)",
        [others],
    )
    _until_the_pooler_reconnects(one_connection)
    token = mine["dev-0000"]
    requests: dict[str, Callable[[], object]] = {
        "poll": lambda: executions.pending(container, token),
        "list": lambda: jobs_read.list_jobs(container, tenant, None, 100, 0),
        "detail": lambda: jobs_read.detail(container, tenant, f"{tenant}-job-0", 100, None),
        "start-next": lambda: executions.start_next(container, token, StartNext()),
        "describe": lambda: executions.describe(container, token, f"{tenant}-job-0"),
        "update": lambda: executions.update(container, token, f"{tenant}-job-0", ExecutionUpdate(status="SUCCEEDED")),
    }
    results: dict[str, object] = {}
    checked: dict[str, int] = {}
    with psycopg.connect(one_connection, autocommit=True, prepare_threshold=None) as careless:
        careless.execute("SELECT set_config('jobs.tenant_id', %s, false)", [other_tenant])
        for name, request in requests.items():
            before = rls_probe()
            results[name] = request()
            checked[name] = rls_probe() - before
        session = careless.execute("SELECT current_user, current_setting('jobs.tenant_id')").fetchone()
        login = careless.info.user
    container.close()

    assert all(n > 0 for n in checked.values()), checked
    assert {row["role"] for row in admin.execute("SELECT DISTINCT role FROM rls_probe_log")} == {"jobs_runtime"}
    assert session == (login, other_tenant)  # nothing a request set lasted
    pending = results["poll"]
    assert isinstance(pending, PendingJobs)
    assert sorted(job.job_id for job in pending.jobs) == [f"{tenant}-job-0", f"{tenant}-job-1"]
    listed = results["list"]
    assert isinstance(listed, JobsPage)
    assert {job.job_id for job in listed.jobs} == {f"{tenant}-job-0", f"{tenant}-job-1"}


def _until_the_pooler_reconnects(url: str) -> None:
    """The pooler hands out its dead server connection once (an error to that client) before it
    opens another: spend that on a throwaway client."""
    for _ in range(20):
        try:
            with psycopg.connect(url, autocommit=True, prepare_threshold=None) as probe:
                probe.execute("SELECT 1")
            return
        except psycopg.OperationalError:
            time.sleep(0.1)
    raise AssertionError("the pooler did not reconnect")


def test_two_tenants_interleaved_over_two_shared_server_connections_see_only_their_own(
    owner_url: str, db: Database, tenant: str, other_tenant: str, register: Register, tmp_path: Path
) -> None:
    """24 containers (client connections), half of each tenant, doing the device mix and the
    operator's reads at once over two server connections: every row each one gets is its own."""
    fleets = {name: _tenant_fleet(db, name, register, n=12) for name in (tenant, other_tenant)}
    work = [(name, device) for name in fleets for device in sorted(fleets[name])]

    def container(c: Database, i: int) -> list[str]:
        name, device = work[i]
        token = fleets[name][device]
        seen: list[str] = []
        rng = random.Random(i)
        for _ in range(6):
            seen += [job.job_id for job in executions.pending(c, token).jobs]
            seen += [job.job_id for job in jobs_read.list_jobs(c, name, None, 100, 0).jobs]
            if rng.random() < 0.5:
                nxt = executions.start_next(c, token, StartNext()).execution
                if nxt is not None:
                    seen.append(nxt.job_id)
                    done = executions.update(c, token, nxt.job_id, ExecutionUpdate(status="SUCCEEDED"))
                    seen.append(done.job_id)
        seen += [e.device_id for e in jobs_read.detail(c, name, f"{name}-job-0", 100, None).executions]
        return seen

    log = tmp_path / "pgbouncer.log"
    with pooled(owner_url, pool_size=2, log=log) as url:
        outcomes = all_at_once(url, len(work), container)
    errors = [(o.result, o.result.__cause__, f"{o.ms:.0f} ms") for o in outcomes if isinstance(o.result, Exception)]
    assert not errors, (errors[:3], log.read_text()[-3000:])
    for (name, _), outcome in zip(work, outcomes, strict=True):
        job_ids = [seen for seen in outcome.result if "-job-" in seen]
        assert job_ids and all(seen.startswith(name + "-job-") for seen in job_ids)
        assert set(outcome.result) - set(job_ids) <= set(fleets[name])
