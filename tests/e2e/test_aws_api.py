"""AWS IoT Jobs' own API, driven by the real boto3 clients (iot-jobs-data and iot) against the local
server over HTTP, as a team's existing device and operator code would drive it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import botocore
import psycopg
import pytest
from botocore.config import Config

from jobs_core.domain import devices, groups
from jobs_core.domain.sweep import sweep
from jobs_core.store.db import Database
from jobs_core.store.migrate import migrate
from jobs_local import devjwt
from jobs_local.devdb import ROOT
from tests.conftest import local_server
from tests.factories import scratch_database

CONFIG = Config(signature_version=botocore.UNSIGNED, retries={"mode": "standard", "total_max_attempts": 1})
ARN = "arn:aws:iot:eu-west-1:123456789012"


def data_plane(base_url: str, token: str) -> Any:
    """boto3's iot-jobs-data client, the provision token added by an event hook."""
    client = boto3.client(
        "iot-jobs-data", region_name="us-east-1", endpoint_url=base_url + "/iot-jobs-data", config=CONFIG
    )

    def add_token(request: Any, **kwargs: Any) -> None:
        request.headers["X-Provision-Token"] = token

    client.meta.events.register("before-sign.iot-jobs-data.*", add_token)
    return client


def control_plane(base_url: str, tenant: str | None) -> Any:
    """boto3's iot client, unsigned, the operator's JWT as a bearer token."""
    client = boto3.client("iot", region_name="us-east-1", endpoint_url=base_url + "/iot", config=CONFIG)
    jwt = devjwt.mint(tenant, "alice")

    def add_bearer(request: Any, **kwargs: Any) -> None:
        request.headers["Authorization"] = f"Bearer {jwt}"

    client.meta.events.register("before-sign.iot.*", add_bearer)
    return client


@pytest.fixture
def fleet(env: dict[str, str], tenant: str) -> Iterator[dict[str, str]]:
    """Four devices of the tenant (thing-1..thing-4), all in the group "fleet"; their tokens."""
    db = Database(lambda refresh: env["DATABASE_URL"])
    names = [f"thing-{i}" for i in range(1, 5)]
    tokens = devices.register(db, tenant, names)
    groups.add_to_group(db, tenant, "fleet", names)
    yield tokens
    db.close()


def raises(client: Any, code: str, call: Callable[[], Any]) -> dict[str, Any]:
    """The call raises the modelled exception class for `code` (client.exceptions.<code>)."""
    with pytest.raises(getattr(client.exceptions, code)) as caught:
        call()
    response: dict[str, Any] = caught.value.response
    assert response["Error"]["Code"] == code
    return response


def document(version: str) -> str:
    return json.dumps({"operation": "firmware", "version": version})


def test_a_device_loop_as_the_developer_guide_writes_it(
    base_url: str, env: dict[str, str], tenant: str, fleet: dict[str, str]
) -> None:
    iot = control_plane(base_url, tenant)
    created = iot.create_job(
        jobId="fw-2", targets=[f"{ARN}:thinggroup/fleet"], document=document("2"), description="firmware 2"
    )
    assert created["jobArn"].endswith(":job/fw-2") and created["description"] == "firmware 2"
    jobs = data_plane(base_url, fleet["thing-1"])

    pending = jobs.get_pending_job_executions(thingName="thing-1")
    assert pending["inProgressJobs"] == []
    queued = pending["queuedJobs"][0]
    assert queued["jobId"] == "fw-2" and isinstance(queued["queuedAt"], int)  # long: epoch seconds
    assert (queued["versionNumber"], queued["executionNumber"]) == (1, 1)

    started = jobs.start_next_pending_job_execution(
        thingName="thing-1", statusDetails={"step": "download"}, stepTimeoutInMinutes=10
    )["execution"]
    assert started["status"] == "IN_PROGRESS" and started["statusDetails"] == {"step": "download"}
    assert json.loads(started["jobDocument"]) == {"operation": "firmware", "version": "2"}
    assert 590 <= started["approximateSecondsBeforeTimedOut"] <= 600

    progress = jobs.update_job_execution(
        thingName="thing-1",
        jobId="fw-2",
        status="IN_PROGRESS",
        statusDetails={"step": "install", "percent": "50"},
        expectedVersion=started["versionNumber"],
        includeJobExecutionState=True,
    )
    assert progress["executionState"] == {
        "status": "IN_PROGRESS",
        "statusDetails": {"step": "install", "percent": "50"},
        "versionNumber": started["versionNumber"] + 1,
    }
    # after a reboot: what was I doing?
    resumed = jobs.describe_job_execution(thingName="thing-1", jobId="$next")["execution"]
    assert (resumed["jobId"], resumed["status"], resumed["versionNumber"]) == ("fw-2", "IN_PROGRESS", 3)
    assert jobs.get_pending_job_executions(thingName="thing-1")["inProgressJobs"][0]["jobId"] == "fw-2"
    done = jobs.update_job_execution(
        thingName="thing-1", jobId="fw-2", status="SUCCEEDED", expectedVersion=3, includeJobDocument=True
    )
    assert json.loads(done["jobDocument"])["version"] == "2"

    job = iot.describe_job(jobId="fw-2")["job"]
    assert job["status"] == "IN_PROGRESS" and job["targets"] == ["arn:aws:iot:us-east-1:000000000000:thinggroup/fleet"]
    assert job["jobProcessDetails"]["numberOfSucceededThings"] == 1
    assert job["jobProcessDetails"]["numberOfQueuedThings"] == 3
    assert isinstance(job["createdAt"], datetime)
    # the same execution through the native API: versionNumber is execution_number, executionNumber attempt
    native = iot_native_execution(env, tenant, "fw-2", "thing-1")
    assert (native["status"], native["execution_number"], native["attempt"]) == ("SUCCEEDED", 4, 1)


def iot_native_execution(env: dict[str, str], tenant: str, job_id: str, device: str) -> dict[str, Any]:
    with psycopg.connect(env["DATABASE_URL"], row_factory=psycopg.rows.dict_row, prepare_threshold=None) as admin:
        row = admin.execute(
            "SELECT status, execution_number, attempt FROM job_executions WHERE tenant_id = %s AND job_id = %s"
            " AND device_id = %s",
            [tenant, job_id, device],
        ).fetchone()
    assert row is not None
    return row


def test_every_modelled_error_is_its_boto3_exception_class(
    base_url: str, env: dict[str, str], tenant: str, fleet: dict[str, str]
) -> None:
    iot = control_plane(base_url, tenant)
    iot.create_job(jobId="e1", targets=[f"{ARN}:thinggroup/fleet"], document=document("1"))
    jobs = data_plane(base_url, fleet["thing-1"])
    # the data plane
    raises(
        jobs,
        "InvalidRequestException",
        lambda: jobs.update_job_execution(thingName="thing-1", jobId="e1", status="DONE"),
    )
    raises(jobs, "ResourceNotFoundException", lambda: jobs.get_pending_job_executions(thingName="thing-2"))
    raises(jobs, "ResourceNotFoundException", lambda: jobs.describe_job_execution(thingName="thing-1", jobId="nope"))
    stranger = data_plane(base_url, "not-a-token")
    raises(stranger, "CertificateValidationException", lambda: stranger.get_pending_job_executions(thingName="thing-1"))
    raises(
        jobs,
        "InvalidStateTransitionException",
        lambda: jobs.update_job_execution(thingName="thing-1", jobId="e1", status="SUCCEEDED"),
    )
    raises(
        jobs,
        "InvalidStateTransitionException",  # a stale expectedVersion: the data plane has no VersionConflict
        lambda: jobs.update_job_execution(thingName="thing-1", jobId="e1", status="IN_PROGRESS", expectedVersion=9),
    )
    jobs.update_job_execution(thingName="thing-1", jobId="e1", status="IN_PROGRESS")
    jobs.update_job_execution(thingName="thing-1", jobId="e1", status="SUCCEEDED")
    terminal = raises(
        jobs,
        "TerminalStateException",
        lambda: jobs.update_job_execution(thingName="thing-1", jobId="e1", status="FAILED"),
    )
    assert terminal["ResponseMetadata"]["HTTPStatusCode"] == 410
    # the control plane
    raises(iot, "InvalidRequestException", lambda: iot.create_job(jobId="e2", targets=["thing-1"], document="{}"))
    raises(
        iot,
        "InvalidRequestException",
        lambda: iot.create_job(jobId="e2", targets=[f"{ARN}:thing/thing-1"], document="[1]"),
    )
    raises(iot, "ResourceNotFoundException", lambda: iot.describe_job(jobId="nope"))
    raises(
        iot,
        "ResourceNotFoundException",
        lambda: iot.create_job(jobId="e2", targets=[f"{ARN}:thing/ghost"], document="{}"),
    )
    exists = raises(
        iot,
        "ResourceAlreadyExistsException",
        lambda: iot.create_job(jobId="e1", targets=[f"{ARN}:thing/thing-1"], document="{}"),
    )
    assert exists["resourceId"] == "e1" and exists["resourceArn"].endswith(":job/e1")
    raises(
        iot,
        "VersionConflictException",
        lambda: iot.cancel_job_execution(jobId="e1", thingName="thing-2", expectedVersion=7),
    )
    raises(iot, "InvalidStateTransitionException", lambda: iot.cancel_job_execution(jobId="e1", thingName="thing-1"))
    raises(iot, "InvalidStateTransitionException", lambda: iot.delete_job(jobId="e1"))
    # operations of the models this service does not speak: a modelled error, never a 404 page or a 500
    raises(iot, "InvalidRequestException", lambda: iot.list_thing_types())
    raises(iot, "InvalidRequestException", lambda: iot.update_job(jobId="e1", description="x"))  # PATCH /jobs/{id}
    raises(
        jobs,
        "InvalidRequestException",
        lambda: jobs.start_command_execution(targetArn=f"{ARN}:thing/thing-1", commandArn=f"{ARN}:command/c"),
    )
    nobody = control_plane(base_url, None)  # a verified token without a tenant
    raises(nobody, "UnauthorizedException", lambda: nobody.list_jobs())
    # a database that gives up on a call (a lock held elsewhere past the lock timeout): throttled
    with psycopg.connect(env["DATABASE_URL"], prepare_threshold=None) as holder:
        holder.execute(
            "SELECT 1 FROM job_executions WHERE tenant_id = %s AND device_id = 'thing-3' FOR UPDATE", [tenant]
        )
        throttled = raises(
            jobs := data_plane(base_url, fleet["thing-3"]),
            "ThrottlingException",
            lambda: jobs.update_job_execution(thingName="thing-3", jobId="e1", status="IN_PROGRESS"),
        )
        assert throttled["ResponseMetadata"]["HTTPStatusCode"] == 429
        raises(iot, "ThrottlingException", lambda: iot.cancel_job(jobId="e1"))


def test_a_database_out_of_reach_is_service_unavailable(server_url: str, tmp_path: Path) -> None:
    """A server of its own on a database of its own, which then refuses every connection."""
    with scratch_database(server_url, prefix="jobs_down") as url:
        migrate(url)
        db = Database(lambda refresh: url)
        token = devices.register(db, "acme", ["thing-1"])["thing-1"]
        db.close()
        with local_server({**os.environ, "DATABASE_URL": url}, tmp_path / "down.log") as base:
            jobs, iot = data_plane(base, token), control_plane(base, "acme")
            assert jobs.get_pending_job_executions(thingName="thing-1")["queuedJobs"] == []
            name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
            with psycopg.connect(server_url, autocommit=True) as admin:
                admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name])
            unavailable = raises(
                jobs, "ServiceUnavailableException", lambda: jobs.get_pending_job_executions(thingName="thing-1")
            )
            assert unavailable["ResponseMetadata"]["HTTPStatusCode"] == 503
            raises(iot, "ServiceUnavailableException", lambda: iot.describe_job(jobId="any"))


def test_a_rollout_with_abort_and_a_retried_execution_through_aws_shapes(
    base_url: str, env: dict[str, str], tenant: str, fleet: dict[str, str]
) -> None:
    iot = control_plane(base_url, tenant)
    iot.create_job(
        jobId="r1",
        targets=[f"{ARN}:thinggroup/fleet"],
        document=document("3"),
        jobExecutionsRolloutConfig={"maximumPerMinute": 2},
        abortConfig={
            "criteriaList": [
                {"failureType": "FAILED", "action": "CANCEL", "thresholdPercentage": 50, "minNumberOfExecutedThings": 2}
            ]
        },
        jobExecutionsRetryConfig={"criteriaList": [{"failureType": "FAILED", "numberOfRetries": 1}]},
        timeoutConfig={"inProgressTimeoutInMinutes": 30},
    )
    job = iot.describe_job(jobId="r1")["job"]
    assert job["jobExecutionsRolloutConfig"] == {"maximumPerMinute": 2}
    assert job["abortConfig"]["criteriaList"][0]["thresholdPercentage"] == 50
    assert job["timeoutConfig"] == {"inProgressTimeoutInMinutes": 30}
    assert job["isConcurrent"] is True  # releasing
    # two released (queue order: thing-1, thing-2); the others do not exist for AWS yet
    assert job["jobProcessDetails"]["numberOfQueuedThings"] == 2
    listed = iot.list_job_executions_for_job(jobId="r1")["executionSummaries"]
    assert [s["thingArn"].rsplit("/", 1)[1] for s in listed] == ["thing-1", "thing-2"]
    held = data_plane(base_url, fleet["thing-3"])
    assert held.get_pending_job_executions(thingName="thing-3")["queuedJobs"] == []
    raises(held, "ResourceNotFoundException", lambda: held.describe_job_execution(thingName="thing-3", jobId="r1"))

    first = data_plane(base_url, fleet["thing-1"])
    first.start_next_pending_job_execution(thingName="thing-1")
    retried = first.update_job_execution(
        thingName="thing-1", jobId="r1", status="FAILED", includeJobExecutionState=True
    )
    assert retried["executionState"]["status"] == "QUEUED"  # a retry left: the next attempt
    again = first.start_next_pending_job_execution(thingName="thing-1")["execution"]
    assert again["executionNumber"] == 2
    earlier = iot.describe_job_execution(jobId="r1", thingName="thing-1", executionNumber=1)["execution"]
    assert (earlier["status"], earlier["executionNumber"]) == ("FAILED", 1)
    assert (
        iot.list_job_executions_for_thing(thingName="thing-1")["executionSummaries"][0]["jobExecutionSummary"][
            "retryAttempt"
        ]
        == 1
    )
    first.update_job_execution(thingName="thing-1", jobId="r1", status="FAILED")  # no retry left: FAILED
    second = data_plane(base_url, fleet["thing-2"])
    second.start_next_pending_job_execution(thingName="thing-2")
    second.update_job_execution(thingName="thing-2", jobId="r1", status="SUCCEEDED")  # 2 finished, 1 FAILED: 50%

    job = iot.describe_job(jobId="r1")["job"]
    assert job["status"] == "CANCELED" and job["isConcurrent"] is False
    assert (job["jobProcessDetails"]["numberOfFailedThings"], job["jobProcessDetails"]["numberOfSucceededThings"]) == (
        1,
        1,
    )
    assert [j["jobId"] for j in iot.list_jobs(status="CANCELED")["jobs"]] == ["r1"]
    db = Database(lambda refresh: env["DATABASE_URL"])
    sweep(db, now=datetime.now(UTC) + timedelta(seconds=1))  # the schedule ends what was held back
    db.close()
    assert held.get_pending_job_executions(thingName="thing-3")["queuedJobs"] == []


def test_a_second_tenant_gets_resource_not_found_for_everything_of_the_first(
    base_url: str, env: dict[str, str], tenant: str, other_tenant: str, fleet: dict[str, str]
) -> None:
    mine = control_plane(base_url, tenant)
    mine.create_job(jobId="secret", targets=[f"{ARN}:thing/thing-1"], document=document("9"))
    theirs = control_plane(base_url, other_tenant)
    db = Database(lambda refresh: env["DATABASE_URL"])
    their_token = devices.register(db, other_tenant, ["thing-1"])["thing-1"]  # the same name, their own device
    db.close()
    for call in (
        lambda: theirs.describe_job(jobId="secret"),
        lambda: theirs.get_job_document(jobId="secret"),
        lambda: theirs.list_job_executions_for_job(jobId="secret"),
        lambda: theirs.describe_job_execution(jobId="secret", thingName="thing-1"),
        lambda: theirs.cancel_job(jobId="secret"),
        lambda: theirs.delete_job(jobId="secret", force=True),
        lambda: theirs.cancel_job_execution(jobId="secret", thingName="thing-1", force=True),
        lambda: theirs.list_job_executions_for_thing(thingName="thing-2"),
    ):
        raises(theirs, "ResourceNotFoundException", call)
    assert theirs.list_jobs()["jobs"] == []
    assert theirs.list_job_executions_for_thing(thingName="thing-1")["executionSummaries"] == []
    device = data_plane(base_url, their_token)
    assert device.get_pending_job_executions(thingName="thing-1") | {"ResponseMetadata": None} == {
        "inProgressJobs": [],
        "queuedJobs": [],
        "ResponseMetadata": None,
    }
    raises(
        device, "ResourceNotFoundException", lambda: device.describe_job_execution(thingName="thing-1", jobId="secret")
    )
    raises(
        device,
        "ResourceNotFoundException",
        lambda: device.update_job_execution(thingName="thing-1", jobId="secret", status="IN_PROGRESS"),
    )
    assert mine.describe_job(jobId="secret")["job"]["status"] == "IN_PROGRESS"  # untouched


def test_one_service_two_doors(base_url: str, env: dict[str, str], tenant: str, fleet: dict[str, str]) -> None:
    """A job created natively is driven through AWS's API, and one created through AWS's natively."""
    import urllib.request

    def native(method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        headers = {"content-type": "application/json"}
        headers |= {"x-provision-token": token} if token else {"authorization": f"Bearer {devjwt.mint(tenant, 'bob')}"}
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(base_url + path, data=data, method=method, headers=headers)  # noqa: S310
        with urllib.request.urlopen(request) as response:  # noqa: S310
            return json.load(response)

    native("POST", "/customer/jobs", {"job_id": "n1", "document_type": "reboot", "target_device_id": "thing-2"})
    jobs = data_plane(base_url, fleet["thing-2"])
    execution = jobs.start_next_pending_job_execution(thingName="thing-2")["execution"]
    assert json.loads(execution["jobDocument"]) == {"operation": "reboot"}
    jobs.update_job_execution(thingName="thing-2", jobId="n1", status="SUCCEEDED")
    assert native("GET", "/customer/jobs/n1")["status"] == "COMPLETED"

    iot = control_plane(base_url, tenant)
    iot.create_job(jobId="a1", targets=[f"{ARN}:thing/thing-3"], document=document("7"))
    assert native("GET", "/customer/jobs/a1")["document_params"] == {"operation": "firmware", "version": "7"}
    claimed = native("PUT", "/device/v1/jobs/a1/execution", {"status": "IN_PROGRESS"}, token=fleet["thing-3"])
    assert claimed["execution_number"] == 2
    assert iot.describe_job_execution(jobId="a1", thingName="thing-3")["execution"]["versionNumber"] == 2


def test_concurrent_start_next_through_aws_never_claims_twice(
    base_url: str, env: dict[str, str], tenant: str, fleet: dict[str, str]
) -> None:
    iot = control_plane(base_url, tenant)
    for i in range(3):
        iot.create_job(jobId=f"c{i}", targets=[f"{ARN}:thing/thing-4"], document=document(str(i)))
    results: list[Any] = []
    clients = [data_plane(base_url, fleet["thing-4"]) for _ in range(8)]

    def run(client: Any) -> None:
        results.append(client.start_next_pending_job_execution(thingName="thing-4")["execution"]["jobId"])

    threads = [threading.Thread(target=run, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["c0"] * 8  # one claimed, the others resumed it


def test_the_example_agent_runs_a_retried_job_and_refuses_an_unknown_operation(
    base_url: str, tenant: str, fleet: dict[str, str]
) -> None:
    iot = control_plane(base_url, tenant)
    retry = {"criteriaList": [{"failureType": "FAILED", "numberOfRetries": 1}]}
    bad = json.dumps({"operation": "firmware", "version": "4", "fail": True})
    iot.create_job(jobId="bad-build", targets=[f"{ARN}:thing/thing-2"], document=bad, jobExecutionsRetryConfig=retry)
    iot.create_job(jobId="mystery", targets=[f"{ARN}:thing/thing-2"], document=json.dumps({"operation": "dance"}))
    agent = subprocess.run(
        [sys.executable, "examples/aws_device_agent.py", "--endpoint", base_url, "--thing", "thing-2",
         "--token", fleet["thing-2"], "--once"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert agent.returncode == 0, agent.stdout + agent.stderr[-4000:]
    assert agent.stdout.splitlines() == [
        "bad-build attempt 1: RETRIED",
        "bad-build attempt 2: FAILED",
        "mystery attempt 1: REJECTED",
    ]
    summary = iot.list_job_executions_for_thing(thingName="thing-2")["executionSummaries"]
    assert {s["jobId"]: s["jobExecutionSummary"]["status"] for s in summary} == {
        "bad-build": "FAILED",
        "mystery": "REJECTED",
    }


def aws_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The AWS CLI that `make test` installs (.venv-awscli), with the plugin that sends this
    service's credentials (.local/aws-config, tools/awscli_jobs_plugin.py)."""
    cli, config = ROOT / ".venv-awscli" / "bin" / "aws", ROOT / ".local" / "aws-config"
    assert cli.exists() and config.exists(), "run `make awscli` (make test does): the AWS CLI is not installed"
    environment = {"PATH": os.environ["PATH"], "AWS_CONFIG_FILE": str(config), "HOME": str(ROOT / ".local"), **env}
    return subprocess.run(
        [str(cli), *args, "--no-sign-request", "--region", "us-east-1", "--output", "json"],
        capture_output=True, text=True, timeout=60, env=environment,
    )  # fmt: skip


def test_the_aws_cli_drives_both_apis(base_url: str, tenant: str, fleet: dict[str, str]) -> None:
    iot = control_plane(base_url, tenant)
    iot.create_job(jobId="cli-1", targets=[f"{ARN}:thing/thing-1"], document=document("5"))
    pending = aws_cli(
        "iot-jobs-data", "get-pending-job-executions", "--thing-name", "thing-1",
        "--endpoint-url", base_url + "/iot-jobs-data", IOT_JOBS_PROVISION_TOKEN=fleet["thing-1"],
    )  # fmt: skip
    assert pending.returncode == 0, pending.stderr
    assert [job["jobId"] for job in json.loads(pending.stdout)["queuedJobs"]] == ["cli-1"]
    described = aws_cli(
        "iot", "describe-job", "--job-id", "cli-1", "--endpoint-url", base_url + "/iot",
        IOT_JOBS_OPERATOR_TOKEN=devjwt.mint(tenant, "alice"),
    )  # fmt: skip
    assert described.returncode == 0, described.stderr
    assert json.loads(described.stdout)["job"]["jobProcessDetails"]["numberOfQueuedThings"] == 1
    refused = aws_cli(
        "iot-jobs-data", "get-pending-job-executions", "--thing-name", "thing-1",
        "--endpoint-url", base_url + "/iot-jobs-data", IOT_JOBS_PROVISION_TOKEN="not-a-token",
    )  # fmt: skip
    assert refused.returncode != 0 and "CertificateValidationException" in refused.stderr
