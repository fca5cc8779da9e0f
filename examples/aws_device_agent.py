"""A device agent written against AWS IoT Jobs' own API (boto3's iot-jobs-data client), the way AWS's
developer guide writes one, running unchanged against this service.

    python examples/aws_device_agent.py --endpoint http://127.0.0.1:3000 --thing sensor-1 --token TOKEN [--once]

Against AWS IoT the client would use the account's iot:Jobs endpoint and the device's credentials;
here the endpoint is BASE/iot-jobs-data and the device's provision token goes in X-Provision-Token,
added by a client event hook (the only difference). The loop: after a (re)boot, describe `$next`
to resume what was in progress; start the next pending execution; run it step by step, each
update with the expectedVersion last seen and a step timeout; finish with SUCCEEDED or FAILED
(REJECTED for an unknown operation). A FAILED attempt the job retries is started again.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import boto3
import botocore
from botocore.config import Config

STEP_TIMEOUT_MINUTES = 10
Step = Callable[[dict[str, Any]], None]


def jobs_client(endpoint: str, token: str, region: str = "us-east-1") -> Any:
    """boto3's iot-jobs-data client for this service: the provision token on every request."""
    client = boto3.client(
        "iot-jobs-data",
        region_name=region,
        endpoint_url=endpoint.rstrip("/") + "/iot-jobs-data",
        config=Config(signature_version=botocore.UNSIGNED, retries={"mode": "standard"}),
    )

    def add_token(request: Any, **kwargs: Any) -> None:
        request.headers["X-Provision-Token"] = token

    client.meta.events.register("before-sign.iot-jobs-data.*", add_token)
    return client


def firmware(document: dict[str, Any]) -> list[str]:
    return ["download", "verify", f"install {document.get('version', '?')}", "reboot"]


OPERATIONS: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "firmware": firmware,
    "reboot": lambda document: ["reboot"],
}


def run(jobs: Any, thing: str, execution: dict[str, Any]) -> str:
    """Run one execution to its end; returns the status it finished with."""
    document = json.loads(execution.get("jobDocument") or "{}")
    job_id, version = execution["jobId"], execution["versionNumber"]
    steps = OPERATIONS.get(document.get("operation", ""))
    if steps is None:
        jobs.update_job_execution(
            thingName=thing,
            jobId=job_id,
            status="REJECTED",
            statusDetails={"reason": f"unknown operation {document.get('operation')!r}"[:1024]},
            expectedVersion=version,
        )
        return "REJECTED"
    for step in steps(document):
        state = jobs.update_job_execution(
            thingName=thing,
            jobId=job_id,
            status="IN_PROGRESS",
            statusDetails={"step": step},
            stepTimeoutInMinutes=STEP_TIMEOUT_MINUTES,
            expectedVersion=version,
            includeJobExecutionState=True,
        )["executionState"]
        version = state["versionNumber"]
    outcome = "FAILED" if document.get("fail") else "SUCCEEDED"
    final = jobs.update_job_execution(
        thingName=thing,
        jobId=job_id,
        status=outcome,
        statusDetails={"step": "done"},
        expectedVersion=version,
        includeJobExecutionState=True,
    )["executionState"]
    return "RETRIED" if final["status"] == "QUEUED" else outcome


def loop(jobs: Any, thing: str, once: bool, log: Callable[[str], None] = print) -> int:
    """Work until nothing is pending (--once), else poll every few seconds. Returns the executions run."""
    resumed = jobs.describe_job_execution(thingName=thing, jobId="$next").get("execution")
    if resumed is not None and resumed["status"] == "IN_PROGRESS":
        log(f"resuming {resumed['jobId']} after a reboot")
    done = 0
    while True:
        execution = jobs.start_next_pending_job_execution(
            thingName=thing, stepTimeoutInMinutes=STEP_TIMEOUT_MINUTES
        ).get("execution")
        if execution is None:
            if once:
                return done
            time.sleep(5)
            continue
        outcome = run(jobs, thing, execution)
        done += 1
        log(f"{execution['jobId']} attempt {execution['executionNumber']}: {outcome}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint", required=True, help="the service's base URL")
    parser.add_argument("--thing", required=True, help="this device's id (its thing name)")
    parser.add_argument("--token", required=True, help="this device's provision token")
    parser.add_argument("--once", action="store_true", help="stop when nothing is pending")
    args = parser.parse_args(argv)
    try:
        loop(jobs_client(args.endpoint, args.token), args.thing, args.once)
    except botocore.exceptions.ClientError as error:
        print(f"{error.response['Error']['Code']}: {error.response['Error']['Message']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
