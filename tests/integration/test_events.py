"""Every function is invoked with its file in events/, as `sam local invoke -e` would: the files
cannot rot. Only the credentials are swapped for ones this database knows."""

from __future__ import annotations

import json
from typing import Any

from jobs_local import template
from jobs_local.lambda_context import LocalContext
from tests.factories import Register
from tests.helpers import EVENTS


def run(function: str, event: dict[str, Any]) -> dict[str, Any]:
    props = template.functions()[function]["Properties"]
    module = __import__(props["Handler"].rsplit(".", 1)[0])
    result: dict[str, Any] = module.lambda_handler(event, LocalContext(function_name=function))
    return result


def event(name: str, *, token: str | None = None, tenant: str | None = None) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    if token is not None:
        loaded["headers"]["x-provision-token"] = token
    if tenant is not None:
        loaded["requestContext"]["authorizer"]["jwt"]["claims"]["tenant_id"] = tenant
    return loaded


def test_every_function_has_an_event_file() -> None:
    handlers = {props["Properties"]["Handler"].split(".")[0] for props in template.functions().values()}
    assert handlers == {path.stem for path in EVENTS.glob("*.json")}


def test_a_session_driven_by_the_event_files(tenant: str, register: Register) -> None:
    token = register(tenant, 1)["dev-0000"]

    created = run("OperatorCreateJobFunction", event("operator_create_job", tenant=tenant))
    assert created["statusCode"] == 201, created
    assert json.loads(created["body"])["job_id"] == "fw-2026-11"

    listed = run("OperatorListJobsFunction", event("operator_list_jobs", tenant=tenant))
    assert [job["job_id"] for job in json.loads(listed["body"])] == ["fw-2026-11"]

    detail = run("OperatorGetJobFunction", event("operator_get_job", tenant=tenant))
    assert json.loads(detail["body"])["counts"]["QUEUED"] == 1

    described = run("AwsIotFunction", event("aws_iot", tenant=tenant))
    assert json.loads(described["body"])["job"]["jobProcessDetails"]["numberOfQueuedThings"] == 1, described
    aws_pending = run("AwsJobsDataFunction", event("aws_jobs_data", token=token))
    assert [job["jobId"] for job in json.loads(aws_pending["body"])["queuedJobs"]] == ["fw-2026-11"], aws_pending

    pending = run("DeviceListPendingFunction", event("device_list_pending", token=token))
    assert [job["job_id"] for job in json.loads(pending["body"])["jobs"]] == ["fw-2026-11"]

    execution = run("DeviceGetExecutionFunction", event("device_get_execution", token=token))
    assert json.loads(execution["body"])["document"]["params"]["version"] == "2.1.0"

    claimed = run("DeviceUpdateExecutionFunction", event("device_update_execution", token=token))
    assert claimed["statusCode"] == 200, claimed
    assert json.loads(claimed["body"])["status"] == "IN_PROGRESS"

    started = run("DeviceStartNextFunction", event("device_start_next", token=token))
    assert json.loads(started["body"])["execution"]["job_id"] == "fw-2026-11"  # the one in progress

    canceled = run("OperatorCancelJobFunction", event("operator_cancel_job", tenant=tenant))
    assert json.loads(canceled["body"]) == {"job_id": "fw-2026-11", "status": "CANCELED"}

    read = run("OperatorGetExecutionFunction", event("operator_get_execution", tenant=tenant))
    assert json.loads(read["body"])["status"] == "IN_PROGRESS"  # a soft cancel leaves it running

    stopped = run("OperatorCancelExecutionFunction", event("operator_cancel_execution", tenant=tenant))
    assert json.loads(stopped["body"])["status"] == "CANCELED", stopped  # force=true in the event

    swept = run("SweepExpiredFunction", event("sweep_expired"))
    assert swept["skipped"] is False


def test_the_console_page_is_served_with_its_policy() -> None:
    served = run("OperatorConsoleFunction", event("operator_console"))
    assert served["statusCode"] == 200, served
    headers = {k.lower(): v for k, v in served["headers"].items()}
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert "script-src 'self'" in headers["content-security-policy"]
    assert '<script src="/console/app.js" defer></script>' in served["body"]
