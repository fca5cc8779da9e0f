"""A device agent written against AWS IoT Jobs' own API (boto3's iot-jobs-data client), the way AWS's
developer guide writes one, running unchanged against this service.

    python examples/aws_device_agent.py --endpoint http://127.0.0.1:3000 --thing sensor-1 --token TOKEN [--once]

Against AWS IoT the client would use the account's iot:Jobs endpoint and the device's credentials;
here the endpoint is BASE/iot-jobs-data and the device's provision token goes in X-Provision-Token,
added by a client event hook (the only difference). The loop: after a (re)boot, describe `$next`
to resume what was in progress; start the next pending execution; run it step by step, each
update with the expectedVersion last seen and a step timeout; finish with SUCCEEDED or FAILED
(REJECTED for an unknown operation). A FAILED attempt the job retries is started again.

When nothing is pending it waits, then starts the next again. Told of new work as AWS's guide has
a device told, on its notify-next topic (`make run` embeds an MQTT broker on port 1884):

    .venv/bin/python examples/aws_device_agent.py --endpoint http://127.0.0.1:3000 --thing sensor-1 \
        --token TOKEN --mqtt mqtt://127.0.0.1:1884 --tenant acme

it connects as the thing (username: its name; password: its provision token), subscribes (QoS 1,
a persistent session) to iotjobs/{tenant}/things/{thing}/jobs/notify-next (AWS's
$aws/things/{thing}/jobs/notify-next), works off what is pending, and starts the next as soon as
a notice names a queued execution, or after a reconnect (a notice may have come while it was
away); it polls only as a safety net (--safety-poll, +-20%). Without --mqtt, while the broker
cannot be reached (one line on stderr; paho keeps trying), or when it refuses the thing (one
line; push is off), it polls every --interval seconds (+-20%; AWS's API carries no poll hint).
paho-mqtt is imported only with --mqtt. --once works through what is pending, then exits,
without push.

Firmware files: a "firmware" document with `url` (an http(s) URL, normally the fresh presigned
GET URL a `${aws:iot:s3-presigned-url:...}` placeholder becomes) is a download. At its step
"download" the agent GETs the URL with urllib (streamed into a temporary folder, deleted when the
execution ends: this example flashes nothing; at most MAX_DOWNLOAD_BYTES, a timeout of
DOWNLOAD_TIMEOUT_S on connecting and on each read); at "verify" it checks what the document
gives: `size` (an integer, or a string of digits) against the byte count, `sha256` (hex) against
the file's SHA-256. Done: SUCCEEDED, {"step": "done", "downloaded": "<bytes>", "sha256": "<hex>"}.
A mismatch or a failed download (an expired URL's HTTP 403, a 404, the network): FAILED,
{"reason": "sha256 mismatch"}, {"reason": "size mismatch"}, {"reason": "download: HTTP 403"}...
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

import boto3
import botocore
from botocore.config import Config

STEP_TIMEOUT_MINUTES = 10
CONNECT_WAIT_S = 10.0  # for the broker's first answer, before polling instead
MAX_DOWNLOAD_BYTES = 512 * 2**20  # a larger firmware file is refused
DOWNLOAD_TIMEOUT_S = 60.0  # to connect, and for each read
Step = Callable[[str], None]  # reports a step: IN_PROGRESS, {"step": name}
_jitter = random.SystemRandom()


def jittered(seconds: float) -> float:
    """seconds +-20%, so a fleet started together does not poll together."""
    return seconds * _jitter.uniform(0.8, 1.2)


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


def verify(document: dict[str, Any], size: int, sha256: str) -> None:
    """The file against the `size` and `sha256` the document gives, if it gives them."""
    expected = document.get("size")
    if expected is not None and not (re.fullmatch(r"[0-9]+", str(expected)) and int(str(expected)) == size):
        raise DownloadError("size mismatch")
    if document.get("sha256") is not None and str(document["sha256"]).strip().lower() != sha256:
        raise DownloadError("sha256 mismatch")


# One function per operation: it reports its steps as it goes and returns the statusDetails to
# succeed with; a DownloadError means FAILED.
def firmware(document: dict[str, Any], step: Step) -> dict[str, str]:
    done = {"step": "done"}
    with tempfile.TemporaryDirectory(prefix="firmware-") as folder:  # the download's; deleted after
        step("download")
        got = fetch(str(document["url"]), os.path.join(folder, "firmware.bin")) if "url" in document else None
        step("verify")
        if got is not None:
            verify(document, *got)
            done |= {"downloaded": str(got[0]), "sha256": got[1]}
        step(f"install {document.get('version', '?')}")  # a real agent flashes folder/firmware.bin here
        step("reboot")
    return done


def reboot(document: dict[str, Any], step: Step) -> dict[str, str]:
    step("reboot")
    return {"step": "done"}


OPERATIONS: dict[str, Callable[[dict[str, Any], Step], dict[str, str]]] = {"firmware": firmware, "reboot": reboot}


def run(jobs: Any, thing: str, execution: dict[str, Any]) -> str:
    """Run one execution to its end; returns the status it finished with."""
    document = json.loads(execution.get("jobDocument") or "{}")
    job_id, version = execution["jobId"], execution["versionNumber"]
    operation = OPERATIONS.get(document.get("operation", ""))
    if operation is None:
        jobs.update_job_execution(
            thingName=thing,
            jobId=job_id,
            status="REJECTED",
            statusDetails={"reason": f"unknown operation {document.get('operation')!r}"[:1024]},
            expectedVersion=version,
        )
        return "REJECTED"

    def step(name: str) -> None:
        nonlocal version
        version = jobs.update_job_execution(
            thingName=thing,
            jobId=job_id,
            status="IN_PROGRESS",
            statusDetails={"step": name},
            stepTimeoutInMinutes=STEP_TIMEOUT_MINUTES,
            expectedVersion=version,
            includeJobExecutionState=True,
        )["executionState"]["versionNumber"]

    try:
        details = operation(document, step)
        outcome = "FAILED" if document.get("fail") else "SUCCEEDED"
    except DownloadError as error:
        outcome, details = "FAILED", {"reason": str(error)}
    final = jobs.update_job_execution(
        thingName=thing,
        jobId=job_id,
        status=outcome,
        statusDetails=details,
        expectedVersion=version,
        includeJobExecutionState=True,
    )["executionState"]
    return "RETRIED" if final["status"] == "QUEUED" else outcome


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


def subscribe(url: str, topic: str, thing: str, token: str) -> NotifyNext | None:
    """Push, as --mqtt asks: subscribed, or still trying (paho reconnects) while the agent polls;
    None when the broker refused the thing (said on stderr)."""
    push = NotifyNext(url, topic, thing, token)
    push.answered.wait(CONNECT_WAIT_S)
    if push.refused is None and not push.live.is_set():
        print(f"cannot reach the MQTT broker at {url}; polling until it answers", file=sys.stderr, flush=True)
    return still_on(push)


def still_on(push: NotifyNext | None) -> NotifyNext | None:
    """The push, or None once the broker refused it (said on stderr)."""
    if push is None or push.refused is None:
        return push
    push.close()
    print(f"push is off: {push.refused}; polling instead", file=sys.stderr, flush=True)
    return None


def loop(
    jobs: Any,
    thing: str,
    once: bool,
    log: Callable[[str], None] = print,
    push: NotifyNext | None = None,
    interval: float = 300.0,
    safety_poll: float = 3600.0,
) -> int:
    """Work until nothing is pending (once), else wait for notify-next (push) or a poll, and again.
    Returns the executions run."""
    resumed = jobs.describe_job_execution(thingName=thing, jobId="$next").get("execution")
    if resumed is not None and resumed["status"] == "IN_PROGRESS":
        log(f"resuming {resumed['jobId']} after a reboot")
    done = 0
    while True:
        if push is not None:
            push.due.clear()  # this pass starts whatever a notice until now could name
        while execution := jobs.start_next_pending_job_execution(
            thingName=thing, stepTimeoutInMinutes=STEP_TIMEOUT_MINUTES
        ).get("execution"):
            outcome = run(jobs, thing, execution)
            done += 1
            log(f"{execution['jobId']} attempt {execution['executionNumber']}: {outcome}")
        if once:
            return done
        push = still_on(push)
        live = push is not None and push.live.is_set()
        delay = jittered(safety_poll if live else interval)
        said = (
            f"waiting for notify-next (a safety poll in {delay:.0f} s)" if live else f"waiting: a poll in {delay:.0f} s"
        )
        print(said, file=sys.stderr, flush=True)
        if push is not None:
            push.due.wait(delay)  # a notice, a (re)connection, a lost connection, or the time
        else:
            time.sleep(delay)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint", required=True, help="the service's base URL")
    parser.add_argument("--thing", required=True, help="this device's id (its thing name)")
    parser.add_argument("--token", required=True, help="this device's provision token")
    parser.add_argument("--once", action="store_true", help="stop when nothing is pending")
    parser.add_argument("--interval", type=float, default=300.0, help="seconds between polls (+-20%%) without push")
    parser.add_argument("--mqtt", metavar="mqtt://HOST:PORT", help="wait for notify-next on this MQTT broker")
    parser.add_argument("--tenant", help="this thing's tenant (its topic's), with --mqtt")
    parser.add_argument("--topic-prefix", default="iotjobs", help="the service's PUSH_TOPIC_PREFIX")
    parser.add_argument(
        "--safety-poll", type=float, default=3600.0, help="seconds between polls (+-20%%) while push is up"
    )
    args = parser.parse_args(argv)
    if args.mqtt and not args.tenant:
        parser.error(f"--mqtt needs --tenant (the topic is {args.topic_prefix}/TENANT/things/THING/...)")
    if args.mqtt and (urlsplit(args.mqtt).scheme not in ("mqtt", "tcp") or not urlsplit(args.mqtt).hostname):
        parser.error(f"--mqtt must be mqtt://host:port, not {args.mqtt!r}")
    jobs = jobs_client(args.endpoint, args.token)
    push = None
    if args.mqtt and not args.once:
        topic = f"{args.topic_prefix}/{args.tenant}/things/{args.thing}/jobs/notify-next"
        push = subscribe(args.mqtt, topic, args.thing, args.token)
    try:
        loop(jobs, args.thing, args.once, push=push, interval=args.interval, safety_poll=args.safety_poll)
    except botocore.exceptions.ClientError as error:
        print(f"{error.response['Error']['Code']}: {error.response['Error']['Message']}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        if push is not None:
            push.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
