"""A small device agent for the jobs API, standard library only (paho-mqtt too, with --mqtt).

    python examples/device_agent.py --url http://127.0.0.1:3000 --token TOKEN [--once]

It starts its next execution (one call: the one in progress after a reboot, else the oldest
queued one, claimed), runs the handler for the document's type with a deadline for each step,
reports progress, and finishes with SUCCEEDED, FAILED or REJECTED (unknown type). A FAILED
attempt the job retries comes back QUEUED as the next attempt, and is started again. Every
update carries the execution_number last seen, so a stale one is refused (409).

When nothing is left to start it waits, then starts the next again. Told of new work by push
(`make run` embeds an MQTT broker on port 1884):

    .venv/bin/python examples/device_agent.py --url http://127.0.0.1:3000 \
        --mqtt mqtt://127.0.0.1:1884 --tenant acme --device sensor-1 --token TOKEN

it connects as the device (username: its id; password: its provision token; the device API
tells neither the tenant nor the id, hence the options), subscribes (QoS 1, a persistent session)
to iotjobs/{tenant}/things/{device}/jobs/notify-next, works off what is pending, and starts the
next as soon as a notice names a queued execution, or after a reconnect (a notice may have come
while it was away); it polls only as a safety net (--safety-poll, +-20%). Without --mqtt, while
the broker cannot be reached (one line on stderr; paho keeps trying), or when it refuses the
device (one line; push is off), it polls when the service's hint says (next_poll_in_seconds,
jittered by the service), or every --interval seconds (+-20%). paho-mqtt is imported only with
--mqtt: without it, this is the standard library only. --once works through what can be started,
then exits, without push.

Firmware files: a "firmware" document whose params have `url` (an http(s) URL, normally the
fresh presigned GET URL a `${aws:iot:s3-presigned-url:...}` placeholder becomes) is a download.
The agent reports {"step": "downloading"}, GETs the URL (streamed into a temporary folder, deleted
when the execution ends: this example flashes nothing; at most MAX_DOWNLOAD_BYTES, a timeout of
DOWNLOAD_TIMEOUT_S on connecting and on each read), then checks what the params give: `size` (an
integer, or a string of digits) against the byte count, `sha256` (hex) against the file's SHA-256.
Done: SUCCEEDED, {"installed": version, "downloaded": "<bytes>", "sha256": "<hex>"}. A mismatch
or a failed download (an expired URL's HTTP 403, a 404, the network): FAILED, {"reason": "sha256
mismatch"}, {"reason": "size mismatch"}, {"reason": "download: HTTP 403"}... (all values strings,
as AWS's statusDetails has them).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import random
import re
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

Report = Callable[[dict[str, Any]], None]
STEP_TIMEOUT_MINUTES = 10  # each step must report within this, or the service times the execution out
DEFAULT_POLL_S = 300.0  # when the service gives no hint
CONNECT_WAIT_S = 10.0  # for the broker's first answer, before polling instead
MAX_DOWNLOAD_BYTES = 512 * 2**20  # a larger firmware file is refused
DOWNLOAD_TIMEOUT_S = 60.0  # to connect, and for each read
_jitter = random.SystemRandom()


def jittered(seconds: float) -> float:
    """seconds +-20%, so a fleet started together does not poll together."""
    return seconds * _jitter.uniform(0.8, 1.2)


class JobsApi:
    def __init__(self, url: str, token: str) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.poll_hint_s: float | None = None  # the last start-next's next_poll_in_seconds

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
        if body.get("next_poll_in_seconds") is not None:  # given when there is nothing to start
            self.poll_hint_s = float(body["next_poll_in_seconds"])
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


# A document's file: fetched, then checked against what the document says of it.
class DownloadError(Exception):
    """The file a document names could not be had, or is not the one it describes: FAILED, with
    {"reason": str(error)}."""


def fetch(url: str, path: str) -> tuple[int, str]:
    """GET url into path, streamed, at most MAX_DOWNLOAD_BYTES: its byte count and SHA-256 (hex)."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise DownloadError("download: not an http(s) URL")
    digest, size = hashlib.sha256(), 0
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, open(path, "wb") as file:  # noqa: S310
            while chunk := response.read(1 << 16):
                size += len(chunk)
                if size > MAX_DOWNLOAD_BYTES:
                    raise DownloadError(f"download: over {MAX_DOWNLOAD_BYTES} bytes")
                digest.update(chunk)
                file.write(chunk)
    except urllib.error.HTTPError as error:  # 403: expired or tampered with; 404: no such object
        raise DownloadError(f"download: HTTP {error.code}") from None
    except (OSError, http.client.HTTPException) as error:  # unreachable, timed out, cut off
        reason = error.reason if isinstance(error, urllib.error.URLError) else error
        raise DownloadError(f"download: {reason}"[:200]) from None
    return size, digest.hexdigest()


def verify(params: dict[str, Any], size: int, sha256: str) -> None:
    """The file against the `size` and `sha256` the params give, if they give them."""
    expected = params.get("size")
    if expected is not None and not (re.fullmatch(r"[0-9]+", str(expected)) and int(str(expected)) == size):
        raise DownloadError("size mismatch")
    if params.get("sha256") is not None and str(params["sha256"]).strip().lower() != sha256:
        raise DownloadError("sha256 mismatch")


# One handler per document type: it does the work (the execution's document.params; its attempt,
# 1 then 2... when retried) and reports progress; raising means FAILED.
def install_firmware(execution: dict[str, Any], report: Report) -> dict[str, Any]:
    params = execution["document"]["params"]
    outcome = {"installed": str(params.get("version", "unknown"))}
    with tempfile.TemporaryDirectory(prefix="firmware-") as folder:  # the download's; deleted after
        report({"step": "downloading"})
        got = fetch(str(params["url"]), os.path.join(folder, "firmware.bin")) if "url" in params else None
        report({"step": "verifying"})
        if got is not None:
            verify(params, *got)
            outcome |= {"downloaded": str(got[0]), "sha256": got[1]}
        report({"step": "installing"})  # a real agent flashes folder/firmware.bin here
    return outcome


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
        why = {"reason": str(exc)} if isinstance(exc, DownloadError) else {"error": str(exc)[:500]}
        answer = api.update(job_id, version, "FAILED", why)
        if answer["status"] == "QUEUED":  # the job retries it: the next attempt is queued already
            return f"FAILED, retried as attempt {answer['attempt']}"
        return "FAILED"
    api.update(job_id, version, "SUCCEEDED", outcome)
    return "SUCCEEDED"


class NotifyNext:
    """The device's notify-next topic, over MQTT (paho-mqtt, imported here only): `due` is set when
    a notice names a queued execution, when a subscription is (re)made (a notice may have come
    while away) and when the connection is lost (the wait changes to polling). paho's loop reconnects;
    `refused` says why the broker will not have this device (push is off for good)."""

    def __init__(self, url: str, topic: str, device: str, token: str) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
            raise ValueError(f"--mqtt must be mqtt://host:port, not {url!r}")
        self.url, self.topic = url, topic
        self.due = threading.Event()
        self.live = threading.Event()  # subscribed: notices arrive
        self.answered = threading.Event()  # the first connection attempt's outcome is known
        self.refused: str | None = None
        tenant = topic.split("/")[1]  # {prefix}/{tenant}/things/{device}/jobs/notify-next
        self._client = mqtt.Client(  # the client id AWS IoT Core's authorizer requires: device@tenant
            CallbackAPIVersion.VERSION2, client_id=f"{device}@{tenant}", protocol=mqtt.MQTTv311, clean_session=False
        )
        self._client.username_pw_set(device, token)
        self._client.on_connect = self._connected
        self._client.on_connect_fail = lambda client, userdata: self.answered.set()
        self._client.on_subscribe = self._subscribed
        self._client.on_message = self._message
        self._client.on_disconnect = self._disconnected
        self._client.connect_async(parts.hostname, parts.port or 1883, keepalive=60)
        self._client.loop_start()

    def _connected(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason == "Server unavailable":  # for now (its database, say): paho tries again
            self.answered.set()
        elif reason.is_failure:  # not authorized, a bad password: not this device, for good
            self._refuse(f"the broker refused the connection ({reason})")
        else:
            client.subscribe(self.topic, qos=1)

    def _subscribed(self, client: Any, userdata: Any, mid: int, reasons: list[Any], properties: Any) -> None:
        if any(reason.is_failure for reason in reasons):
            self._refuse(f"the broker refused the subscription to {self.topic}")
        else:
            self.live.set()
            self.due.set()
            self.answered.set()

    def _message(self, client: Any, userdata: Any, message: Any) -> None:
        try:
            notice = json.loads(message.payload)
        except ValueError:
            return
        # {"timestamp"} alone: nothing to do; an IN_PROGRESS execution: this agent's own claim (only
        # the device claims), run already; a QUEUED one: work to start
        execution = notice.get("execution") if isinstance(notice, dict) else None
        if isinstance(execution, dict) and execution.get("status") == "QUEUED":
            self.due.set()

    def _disconnected(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if self.live.is_set():
            self.live.clear()
            self.due.set()

    def _refuse(self, why: str) -> None:
        self.refused = why
        self._client.disconnect()  # and no reconnecting: the loop ends
        self.live.clear()
        self.due.set()
        self.answered.set()

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def subscribe(args: argparse.Namespace) -> NotifyNext | None:
    """Push, as --mqtt asks: subscribed, or still trying (paho reconnects) while the agent polls;
    None when the broker refused the device (said on stderr)."""
    topic = f"{args.topic_prefix}/{args.tenant}/things/{args.device}/jobs/notify-next"
    push = NotifyNext(args.mqtt, topic, args.device, args.token)
    push.answered.wait(CONNECT_WAIT_S)
    if push.refused is None and not push.live.is_set():
        print(f"cannot reach the MQTT broker at {args.mqtt}; polling until it answers", file=sys.stderr, flush=True)
    return still_on(push)


def still_on(push: NotifyNext | None) -> NotifyNext | None:
    """The push, or None once the broker refused it (said on stderr)."""
    if push is None or push.refused is None:
        return push
    push.close()
    print(f"push is off: {push.refused}; polling instead", file=sys.stderr, flush=True)
    return None


def poll_in(args: argparse.Namespace, api: JobsApi) -> float:
    """When to poll without push: --interval (+-20%), else the service's hint (jittered by it)."""
    if args.interval is not None:
        return jittered(args.interval)
    return api.poll_hint_s or jittered(DEFAULT_POLL_S)


def work_off(api: JobsApi) -> bool:
    """Start, run and finish executions until there is nothing left to start (True), or until a
    refusal that leaves one unfinished (False: poll again soon, push or not)."""
    while (execution := api.start_next()) is not None:
        try:
            print(f"{execution['job_id']}: {run_job(api, execution)}", flush=True)
        except RuntimeError as refused:  # e.g. canceled meanwhile: move on
            print(f"{execution['job_id']}: {refused}", file=sys.stderr, flush=True)
            if "canceled" not in str(refused):
                return False  # not a refusal that ends this execution: poll again later
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:3000")
    parser.add_argument("--token", required=True)
    parser.add_argument(
        "--interval", type=float, help="seconds between polls (+-20%%); default: the service's hint, without push"
    )
    parser.add_argument("--once", action="store_true", help="work until nothing is left to start, then exit")
    parser.add_argument("--mqtt", metavar="mqtt://HOST:PORT", help="wait for notify-next on this MQTT broker")
    parser.add_argument("--tenant", help="this device's tenant (its topic's), with --mqtt")
    parser.add_argument("--device", help="this device's id (its MQTT username and topic's), with --mqtt")
    parser.add_argument("--topic-prefix", default="iotjobs", help="the service's PUSH_TOPIC_PREFIX")
    parser.add_argument(
        "--safety-poll", type=float, default=3600.0, help="seconds between polls (+-20%%) while push is up"
    )
    args = parser.parse_args(argv)
    if args.mqtt and not (args.tenant and args.device):
        parser.error(f"--mqtt needs --tenant and --device (the topic is {args.topic_prefix}/TENANT/things/DEVICE/...)")
    if args.mqtt and (urlsplit(args.mqtt).scheme not in ("mqtt", "tcp") or not urlsplit(args.mqtt).hostname):
        parser.error(f"--mqtt must be mqtt://host:port, not {args.mqtt!r}")
    api = JobsApi(args.url, args.token)
    push = subscribe(args) if args.mqtt and not args.once else None
    try:
        while True:
            if push is not None:
                push.due.clear()  # this pass starts whatever a notice until now could name
            finished = work_off(api)
            if args.once:
                return 0
            push = still_on(push)
            if push is not None and push.live.is_set() and finished:
                delay = jittered(args.safety_poll)
                print(f"waiting for notify-next (a safety poll in {delay:.0f} s)", file=sys.stderr, flush=True)
                push.due.wait(delay)
            else:
                delay = poll_in(args, api)
                print(f"waiting: a poll in {delay:.0f} s", file=sys.stderr, flush=True)
                if push is not None:
                    push.due.wait(delay)  # woken when the broker answers at last
                else:
                    time.sleep(delay)
    except KeyboardInterrupt:
        return 130
    finally:
        if push is not None:
            push.close()


if __name__ == "__main__":
    sys.exit(main())
