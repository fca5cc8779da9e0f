"""A small device agent for the jobs API, standard library only.

    python examples/device_agent.py --url http://127.0.0.1:3000 --token TOKEN [--once]

It polls its pending executions, claims one at a time, runs the handler for the document's
type, reports progress, and finishes with SUCCEEDED, FAILED or REJECTED (unknown type).
Every update carries the execution_number last seen, so a stale one is refused (409).
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

    def pending(self) -> list[dict[str, Any]]:
        status, body = self.call("GET", "/device/v1/jobs/pending")
        if status != 200:
            raise RuntimeError(f"poll failed: {status} {body}")
        jobs: list[dict[str, Any]] = body["jobs"]
        return jobs

    def update(self, job_id: str, version: int, status: str, details: dict[str, Any] | None = None) -> int:
        """Returns the new execution_number; raises on refusal."""
        body: dict[str, Any] = {"status": status, "execution_number": version}
        if details is not None:
            body["status_details"] = details
        code, answer = self.call("PUT", f"/device/v1/jobs/{job_id}/execution", body)
        if code != 200:
            raise RuntimeError(f"{status} refused: {code} {answer['message']}")
        version = answer["execution_number"]
        return int(version)


# One handler per document type: it does the work and reports progress; raising means FAILED.
def install_firmware(params: dict[str, Any], report: Report) -> dict[str, Any]:
    for step in ("downloading", "verifying", "installing"):
        report({"step": step})
    return {"installed": params.get("version", "unknown")}


def reboot(params: dict[str, Any], report: Report) -> dict[str, Any]:
    return {"rebooted": True}


HANDLERS: dict[str, Callable[[dict[str, Any], Report], dict[str, Any]]] = {
    "firmware": install_firmware,
    "reboot": reboot,
}


def run_job(api: JobsApi, job: dict[str, Any]) -> str:
    job_id, version = job["job_id"], job["execution_number"]
    handler = HANDLERS.get(job["document"]["type"])
    if handler is None:
        api.update(job_id, version, "REJECTED", {"reason": f"unsupported document type {job['document']['type']}"})
        return "REJECTED"
    version = api.update(job_id, version, "IN_PROGRESS")  # claim

    def report(details: dict[str, Any]) -> None:
        nonlocal version
        version = api.update(job_id, version, "IN_PROGRESS", details)

    try:
        outcome = handler(job["document"]["params"], report)
    except Exception as exc:
        api.update(job_id, version, "FAILED", {"error": str(exc)[:500]})
        return "FAILED"
    api.update(job_id, version, "SUCCEEDED", outcome)
    return "SUCCEEDED"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:3000")
    parser.add_argument("--token", required=True)
    parser.add_argument("--interval", type=float, default=30.0, help="seconds between polls")
    parser.add_argument("--once", action="store_true", help="work through the pending jobs once, then exit")
    args = parser.parse_args(argv)
    api = JobsApi(args.url, args.token)
    while True:
        for job in api.pending():
            try:
                print(f"{job['job_id']}: {run_job(api, job)}", flush=True)
            except RuntimeError as refused:  # e.g. canceled or expired meanwhile: move on
                print(f"{job['job_id']}: {refused}", file=sys.stderr, flush=True)
        if args.once:
            return 0
        time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())
