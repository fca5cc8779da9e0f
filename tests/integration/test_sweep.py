"""The scheduled sweep: expiry, completion, idempotence, bounded batches."""

from __future__ import annotations

from jobs_core.domain import executions, jobs_cancel
from jobs_core.domain.models import ExecutionUpdate
from jobs_core.domain.sweep import sweep
from jobs_core.store.db import Database
from tests.factories import Admin, CreateJob, Register, expire_job, job_status


def statuses(admin: Admin, tenant: str, job_id: str) -> dict[str, str]:
    rows = admin.execute(
        "SELECT device_id, status FROM job_executions WHERE tenant_id = %s AND job_id = %s", [tenant, job_id]
    ).fetchall()
    return {row["device_id"]: row["status"] for row in rows}


def test_times_out_active_executions_of_expired_jobs_only(
    db: Database, tenant: str, register: Register, create_job: CreateJob, admin: Admin
) -> None:
    tokens = register(tenant, 4)
    create_job(tenant, job_id="old")
    create_job(tenant, job_id="new")
    executions.update(db, tokens["dev-0000"], "old", ExecutionUpdate(status="IN_PROGRESS"))
    executions.update(db, tokens["dev-0001"], "old", ExecutionUpdate(status="IN_PROGRESS"))
    executions.update(db, tokens["dev-0001"], "old", ExecutionUpdate(status="SUCCEEDED"))
    expire_job(admin, tenant, "old")

    result = sweep(db)

    assert result.timed_out >= 3
    assert statuses(admin, tenant, "old") == {
        "dev-0000": "TIMED_OUT",
        "dev-0001": "SUCCEEDED",
        "dev-0002": "TIMED_OUT",
        "dev-0003": "TIMED_OUT",
    }
    assert set(statuses(admin, tenant, "new").values()) == {"QUEUED"}
    assert job_status(admin, tenant, "old") == "COMPLETED"
    assert job_status(admin, tenant, "new") == "IN_PROGRESS"


def test_is_idempotent(db: Database, tenant: str, register: Register, create_job: CreateJob, admin: Admin) -> None:
    register(tenant, 3)
    create_job(tenant, job_id="j")
    expire_job(admin, tenant, "j")
    sweep(db)
    before = admin.execute("SELECT * FROM job_executions WHERE tenant_id = %s ORDER BY device_id", [tenant]).fetchall()

    again = sweep(db)

    after = admin.execute("SELECT * FROM job_executions WHERE tenant_id = %s ORDER BY device_id", [tenant]).fetchall()
    assert after == before
    assert (again.completed, job_status(admin, tenant, "j")) == (0, "COMPLETED")


def test_works_in_bounded_batches(
    db: Database, tenant: str, register: Register, create_job: CreateJob, admin: Admin
) -> None:
    register(tenant, 25)
    create_job(tenant, job_id="j")
    expire_job(admin, tenant, "j")

    first = sweep(db, batch_size=10, max_batches=2)

    assert (first.timed_out, first.batches) == (20, 2)
    assert job_status(admin, tenant, "j") == "IN_PROGRESS"
    rest = sweep(db, batch_size=10, max_batches=5)
    assert (rest.timed_out, rest.completed) == (5, 1)
    assert job_status(admin, tenant, "j") == "COMPLETED"


def test_never_completes_a_canceled_job(
    db: Database, tenant: str, register: Register, create_job: CreateJob, admin: Admin
) -> None:
    tokens = register(tenant, 2)
    create_job(tenant, job_id="j")
    executions.update(db, tokens["dev-0000"], "j", ExecutionUpdate(status="IN_PROGRESS"))
    jobs_cancel.cancel(db, tenant, "j", None)
    expire_job(admin, tenant, "j")

    sweep(db)

    assert statuses(admin, tenant, "j") == {"dev-0000": "TIMED_OUT", "dev-0001": "REJECTED"}
    assert job_status(admin, tenant, "j") == "CANCELED"


def test_a_timed_out_execution_cannot_be_finished(
    db: Database, tenant: str, register: Register, create_job: CreateJob, admin: Admin
) -> None:
    token = register(tenant, 1)["dev-0000"]
    create_job(tenant, job_id="j")
    executions.update(db, token, "j", ExecutionUpdate(status="IN_PROGRESS"))
    expire_job(admin, tenant, "j")
    sweep(db)

    from jobs_core.errors import InvalidRequest

    try:
        executions.update(db, token, "j", ExecutionUpdate(status="SUCCEEDED"))
    except InvalidRequest as exc:
        assert exc.message == "cannot move an execution from TIMED_OUT to SUCCEEDED"
    else:
        raise AssertionError("a TIMED_OUT execution was finished")
