"""A small device agent for the jobs API, standard library only.

    python examples/device_agent.py --url http://127.0.0.1:3000 --token TOKEN [--once]

It starts its next execution (one call: the one in progress after a reboot, else the oldest
queued one, claimed), runs the handler for the document's type with a deadline for each step,
reports progress, and finishes with SUCCEEDED, FAILED or REJECTED (unknown type). A FAILED
attempt the job retries comes back QUEUED as the next attempt, and is started again. Every
update carries the execution_number last seen, so a stale one is refused (409).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

Report = Callable[[dict[str, Any]], None]
STEP_TIMEOUT_MINUTES = 10  # each step must report within this, or the service times the execution out


class JobsApi:
    def __init__(self, url: str, token: str) -> None:
        self.url = url.rstrip("/")
        self.token = token

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)  # noqa: S310
        request.add_header("X-Provision-Token", self.token)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)

    def start_next(self) -> dict[str, Any] | None:
        """The execution in progress, else the oldest queued one, claimed; None when there is none."""
        status, body = self.call("PUT", "/device/v1/jobs/next", {"step_timeout_minutes": STEP_TIMEOUT_MINUTES})
        if status != 200:
            raise RuntimeError(f"start-next failed: {status} {body}")
        execution: dict[str, Any] | None = body["execution"]
        return execution

    def update(self, job_id: str, version: int, status: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
        """The execution's new state (status, execution_number, attempt, timeout_at); raises on refusal."""
        body: dict[str, Any] = {"status": status, "execution_number": version}
        if details is not None:
            body["status_details"] = details
        if status == "IN_PROGRESS":
            body["step_timeout_minutes"] = STEP_TIMEOUT_MINUTES  # a new deadline for the next step
        code, answer = self.call("PUT", f"/device/v1/jobs/{job_id}/execution", body)
        if code != 200:
            raise RuntimeError(f"{status} refused: {code} {answer['message']}")
        return dict(answer)


# One handler per document type: it does the work (the execution's document.params; its attempt,
# 1 then 2... when retried) and reports progress; raising means FAILED.
def install_firmware(execution: dict[str, Any], report: Report) -> dict[str, Any]:
    for step in ("downloading", "verifying", "installing"):
        report({"step": step})
    return {"installed": execution["document"]["params"].get("version", "unknown")}


def reboot(execution: dict[str, Any], report: Report) -> dict[str, Any]:
    return {"rebooted": True}


def flaky(execution: dict[str, Any], report: Report) -> dict[str, Any]:
    """Fails its first `failures` attempts: what a retry looks like from the device."""
    if execution["attempt"] <= execution["document"]["params"].get("failures", 1):
        raise RuntimeError(f"attempt {execution['attempt']} failed")
    return {"succeeded_on_attempt": execution["attempt"]}


HANDLERS: dict[str, Callable[[dict[str, Any], Report], dict[str, Any]]] = {
    "firmware": install_firmware,
    "reboot": reboot,
    "flaky": flaky,
}


def run_job(api: JobsApi, execution: dict[str, Any]) -> str:
    """Run an execution already IN_PROGRESS (start-next claimed it); returns what became of it."""
    job_id, version = execution["job_id"], execution["execution_number"]
    handler = HANDLERS.get(execution["document"]["type"])
    if handler is None:
        reason = f"unsupported document type {execution['document']['type']}"
        api.update(job_id, version, "REJECTED", {"reason": reason})
        return "REJECTED"

    def report(details: dict[str, Any]) -> None:
        nonlocal version
        version = api.update(job_id, version, "IN_PROGRESS", details)["execution_number"]

    try:
        outcome = handler(execution, report)
    except Exception as exc:
        answer = api.update(job_id, version, "FAILED", {"error": str(exc)[:500]})
        if answer["status"] == "QUEUED":  # the job retries it: the next attempt is queued already
            return f"FAILED, retried as attempt {answer['attempt']}"
        return "FAILED"
    api.update(job_id, version, "SUCCEEDED", outcome)
    return "SUCCEEDED"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:3000")
    parser.add_argument("--token", required=True)
    parser.add_argument("--interval", type=float, default=30.0, help="seconds between polls")
    parser.add_argument("--once", action="store_true", help="work until nothing is left to start, then exit")
    args = parser.parse_args(argv)
    api = JobsApi(args.url, args.token)
    while True:
        while (execution := api.start_next()) is not None:
            try:
                print(f"{execution['job_id']}: {run_job(api, execution)}", flush=True)
            except RuntimeError as refused:  # e.g. canceled meanwhile: move on
                print(f"{execution['job_id']}: {refused}", file=sys.stderr, flush=True)
                if "canceled" not in str(refused):
                    break  # not a refusal that ends this execution: poll again later
        if args.once:
            return 0
        time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())
