"""End to end over real HTTP: the local server (as `make run` starts it), jobsctl, and the
example device agent, each in a process of its own."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

import jwt
import pytest

from jobs_local import devjwt
from jobs_local.devdb import ROOT
from tests.helpers import hintless


def jobsctl(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "tools/jobsctl.py", *args],
        env=env,
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-4000:]  # what went wrong, in the failure
    return done.stdout


def http(
    base_url: str, method: str, path: str, *, headers: dict[str, str] | None = None, body: Any = None
) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base_url + path, data=data, method=method)  # noqa: S310
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def run_agent(base_url: str, token: str) -> subprocess.CompletedProcess[str]:
    """The example device agent, once through what it can start, in a process of its own."""
    done = subprocess.run(
        [sys.executable, "examples/device_agent.py", "--url", base_url, "--token", token, "--once"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-4000:]
    return done


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_openapi_lists_the_jobs_routes_as_the_seed_checks(base_url: str) -> None:
    with urllib.request.urlopen(base_url + "/openapi.json") as response:  # noqa: S310
        paths = [p for p in json.load(response)["paths"] if "jobs" in p]
    assert sorted(p for p in paths if not p.startswith("/iot")) == [
        "/customer/jobs",
        "/customer/jobs/{job_id}",
        "/customer/jobs/{job_id}/executions/{device_id}",
        "/device/v1/jobs/next",
        "/device/v1/jobs/pending",
        "/device/v1/jobs/{job_id}/execution",
    ]
    assert "/iot-jobs-data/things/{thingName}/jobs/{jobId}" in paths and "/iot/jobs/{jobId}" in paths


def test_an_operator_and_a_device_session(base_url: str, env: dict[str, str], tenant: str) -> None:
    token = jobsctl(env, "device", "add", tenant, "sensor-1").strip()
    imported = jobsctl(env, "device", "import", tenant, stdin="sensor-2\nsensor-3\n").splitlines()
    assert [line.split(",")[0] for line in imported] == ["sensor-2", "sensor-3"]
    jobsctl(env, "group", "add", tenant, "lab", "sensor-1", "sensor-2")
    operator = bearer(jobsctl(env, "token", tenant, "--sub", "alice").strip())

    for target, expected in [({"target_device_id": "sensor-3"}, 1), ({"target_group_id": "lab"}, 2)]:
        status, created = http(
            base_url, "POST", "/customer/jobs", headers=operator, body={"document_type": "reboot", **target}
        )
        assert (status, created["execution_count"]) == (201, expected)
    status, created = http(
        base_url,
        "POST",
        "/customer/jobs",
        headers=operator,
        body={
            "job_id": "fw-21",
            "document_type": "firmware",
            "document_params": {"version": "2.1"},
            "target_all": True,
        },
    )
    assert (status, created["execution_count"]) == (201, 3)

    status, pending = http(base_url, "GET", "/device/v1/jobs/pending", headers={"X-Provision-Token": token})
    assert status == 200 and len(pending["jobs"]) == 2

    agent = run_agent(base_url, token)
    assert sorted(agent.stdout.split()) == sorted(
        [f"{pending['jobs'][0]['job_id']}:", "fw-21:", "SUCCEEDED", "SUCCEEDED"]
    )

    status, execution = http(base_url, "GET", "/device/v1/jobs/fw-21/execution", headers={"X-Provision-Token": token})
    assert execution["status"] == "SUCCEEDED" and execution["status_details"] == {"installed": "2.1"}
    assert execution["execution_number"] == 6  # claim, three progress reports, finish

    status, listed = http(base_url, "GET", "/customer/jobs?status=IN_PROGRESS", headers=operator)
    assert status == 200 and {job["job_id"] for job in listed} >= {"fw-21"}
    fw = next(job for job in listed if job["job_id"] == "fw-21")
    assert (fw["total_executions"], fw["succeeded_count"], fw["failed_count"]) == (3, 1, 0)

    status, detail = http(base_url, "GET", "/customer/jobs/fw-21?executions_limit=2", headers=operator)
    assert status == 200 and len(detail["executions"]) == 2 and detail["next_cursor"]

    status, canceled = http(base_url, "DELETE", "/customer/jobs/fw-21", headers=operator, body={"reason": "enough"})
    assert (status, canceled) == (200, {"job_id": "fw-21", "status": "CANCELED"})
    status, _ = http(
        base_url,
        "PUT",
        "/device/v1/jobs/fw-21/execution",
        headers={"X-Provision-Token": imported[0].split(",")[1]},
        body={"status": "IN_PROGRESS"},
    )
    assert status == 400

    swept = json.loads(jobsctl(env, "sweep"))
    assert set(swept) == {"timed_out", "completed"}


@pytest.mark.parametrize(
    "token",
    [
        None,
        "not-a-jwt",
        jwt.encode(
            {"sub": "x", "tenant_id": "t", "iss": devjwt.ISSUER, "aud": devjwt.AUDIENCE, "exp": 2**31}, "k" * 32
        ),
        devjwt.mint("t", exp=int(time.time()) - 10),
        devjwt.mint("t", aud="someone-else"),
        devjwt.mint("t", iss="https://elsewhere.example"),
    ],
    ids=["none", "garbage", "wrong-key", "expired", "wrong-audience", "wrong-issuer"],
)
def test_the_authorizer_refuses_bad_tokens_before_any_function(base_url: str, token: str | None) -> None:
    headers = bearer(token) if token else {}
    assert http(base_url, "GET", "/customer/jobs", headers=headers) == (401, {"message": "Unauthorized"})


def test_a_token_without_tenant_is_403(base_url: str) -> None:
    status, _ = http(base_url, "GET", "/customer/jobs", headers=bearer(devjwt.mint(None)))
    assert status == 403


def test_two_tenants_are_isolated_on_all_seven_routes(
    base_url: str, env: dict[str, str], tenant: str, other_tenant: str
) -> None:
    mine = jobsctl(env, "device", "add", tenant, "d1").strip()
    theirs = jobsctl(env, "device", "add", other_tenant, "d1").strip()
    me, them = bearer(devjwt.mint(tenant)), bearer(devjwt.mint(other_tenant))
    assert (
        http(
            base_url,
            "POST",
            "/customer/jobs",
            headers=me,
            body={"job_id": "secret-job", "document_type": "x", "target_all": True},
        )[0]
        == 201
    )

    probes = [
        http(base_url, "GET", "/customer/jobs/secret-job", headers=them),
        http(base_url, "DELETE", "/customer/jobs/secret-job", headers=them),
        http(base_url, "GET", "/device/v1/jobs/secret-job/execution", headers={"X-Provision-Token": theirs}),
        http(
            base_url,
            "PUT",
            "/device/v1/jobs/secret-job/execution",
            headers={"X-Provision-Token": theirs},
            body={"status": "IN_PROGRESS"},
        ),
    ]
    assert [status for status, _ in probes] == [404, 404, 404, 404]
    assert http(base_url, "GET", "/customer/jobs", headers=them) == (200, [])
    status, body = http(base_url, "GET", "/device/v1/jobs/pending", headers={"X-Provision-Token": theirs})
    assert (status, hintless(body)) == (200, {"jobs": []})
    status, created = http(
        base_url, "POST", "/customer/jobs", headers=them, body={"document_type": "x", "target_device_id": "d1"}
    )
    assert status == 201 and created["execution_count"] == 1  # their own d1, not mine
    assert [body for _, body in probes] == [  # the caller's own words back, nothing of the job
        {"message": "job secret-job not found"},
        {"message": "job secret-job not found"},
        {"message": "job execution not found"},
        {"message": "job execution not found"},
    ]
    # and mine is untouched
    assert (
        http(base_url, "GET", "/device/v1/jobs/pending", headers={"X-Provision-Token": mine})[1]["jobs"][0]["job_id"]
        == "secret-job"
    )


def test_conflicts_and_invalid_input_over_http(base_url: str, env: dict[str, str], tenant: str) -> None:
    device = {"X-Provision-Token": jobsctl(env, "device", "add", tenant, "d1").strip()}
    operator = bearer(devjwt.mint(tenant))
    job = {"job_id": "dup", "document_type": "x", "target_all": True}
    assert http(base_url, "POST", "/customer/jobs", headers=operator, body=job)[0] == 201
    assert http(base_url, "POST", "/customer/jobs", headers=operator, body=job) == (
        409,
        {"message": "job dup already exists"},
    )
    status, body = http(base_url, "POST", "/customer/jobs", headers=operator, body={"document_type": "x"})
    assert status == 422 and body["message"] == "invalid request"

    assert (
        http(base_url, "PUT", "/device/v1/jobs/dup/execution", headers=device, body={"status": "IN_PROGRESS"})[0] == 200
    )
    stale = {"status": "SUCCEEDED", "execution_number": 1}
    assert http(base_url, "PUT", "/device/v1/jobs/dup/execution", headers=device, body=stale)[0] == 409
    status, body = http(base_url, "PUT", "/device/v1/jobs/dup/execution", headers=device, body={"status": "DONE"})
    assert status == 422 and "details" in body


def test_the_example_agent_sees_a_retry_and_finishes_the_next_attempt(
    base_url: str, env: dict[str, str], tenant: str
) -> None:
    token = jobsctl(env, "device", "add", tenant, "flaky-device").strip()
    operator = bearer(devjwt.mint(tenant))
    job = {
        "job_id": "flaky-1",
        "document_type": "flaky",
        "document_params": {"failures": 1},
        "target_all": True,
        "timeout_minutes": 30,
        "retry": [{"failure_type": "FAILED", "number_of_retries": 2}],
    }
    assert http(base_url, "POST", "/customer/jobs", headers=operator, body=job)[0] == 201

    agent = run_agent(base_url, token)

    assert agent.stdout.splitlines() == ["flaky-1: FAILED, retried as attempt 2", "flaky-1: SUCCEEDED"]
    status, detail = http(base_url, "GET", "/customer/jobs/flaky-1/executions/flaky-device", headers=operator)
    assert status == 200 and (detail["status"], detail["attempt"]) == ("SUCCEEDED", 2)
    assert [(a["attempt"], a["status"], a["status_details"]) for a in detail["attempts"]] == [
        (1, "FAILED", {"error": "attempt 1 failed"})
    ]
