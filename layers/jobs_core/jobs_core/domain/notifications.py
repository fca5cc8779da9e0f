"""Push: devices learn of work without polling.

Whenever the head of a device's queue may have changed (an execution of it moved into QUEUED, or
out of QUEUED or IN_PROGRESS), the statement that changed it also wrote a row to push_outbox, in
its own transaction (a trigger: sql/push.sql): what commits is due, what rolls back is not. The
drain takes rows oldest first, reads each device's queue as it is then, hands the notices to a
publisher, and commits the rows' deletion only once the publisher has them: a process that dies
before that leaves them for the next drain (at least once; a duplicate says what a device can read
anyway). Publishing never runs inside the call that made the work due: that call only wakes the
drain after its commit (`wake`), and the schedule drains whatever a wake missed.

Who is told what, and how, is the doors' business (aws/notify.py: AWS IoT Jobs' notify-next and
notify messages); here are the outbox, the identity a broker checks, and the wake.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jobs_core.domain import credentials
from jobs_core.observability import logger
from jobs_core.settings import settings
from jobs_core.store.db import Database

BATCH = 500  # outbox rows a drain takes at once (one transaction, held while they are published)
LIST_LIMIT = 10  # of each list in a notice, oldest first: the pending call's limit
_jitter = random.SystemRandom()

TAKE = "SELECT * FROM push_take(%(limit)s, %(list_limit)s)"
IDENTITY = "SELECT * FROM device_identity(%(key)s)"


@dataclass(frozen=True)
class Device:
    tenant_id: str
    device_id: str


@dataclass(frozen=True)
class Notice:
    """A device's queue as the drain read it: its next execution (execution_json, None when it has
    nothing to do), and its IN_PROGRESS and QUEUED summaries (execution_summary_json)."""

    device: Device
    at: datetime
    next: dict[str, Any] | None
    in_progress: list[dict[str, Any]]
    queued: list[dict[str, Any]]


Publish = Callable[[list[Notice]], None]


def drain(
    db: Database, publish: Publish, *, batches: int | None = None, until: float | None = None, limit: int = BATCH
) -> int:
    """Publish what the outbox holds, `limit` rows a transaction, until it is empty (or after
    `batches` transactions, or past `until` on time.monotonic()); returns the outbox rows done.
    `publish` raising rolls its batch back: the rows stay for the next drain."""
    done = 0
    rounds = 0
    while (batches is None or rounds < batches) and (until is None or time.monotonic() < until):
        rounds += 1
        with db.transaction(role=settings().sweeper_role, pipeline=False) as conn:
            rows = conn.execute(TAKE, {"limit": limit, "list_limit": LIST_LIMIT}).fetchall()
            if rows:
                publish([_notice(row) for row in rows])
        taken = int(rows[0]["taken"]) if rows else 0
        done += taken
        if taken < limit:
            break
    return done


def _notice(row: dict[str, Any]) -> Notice:
    return Notice(
        device=Device(row["tenant_id"], row["device_id"]),
        at=row["at"],
        next=row["next"],
        in_progress=row["in_progress"],
        queued=row["queued"],
    )


def identify(db: Database, token: str | None) -> Device | None:
    """The device a provision token is (the MQTT password), as every device call decides it: its
    current token, or the one a rotation replaced while the overlap lasts. None: no device."""
    row = db.fetch_one(IDENTITY, {"key": credentials.lookup_key(token)})
    if row is None or row["tenant_id"] is None:
        return None
    return Device(row["tenant_id"], row["device_id"])


def topic_root(device: Device) -> str:
    """Where a device's notices are published, and all it may subscribe to:
    {prefix}/{tenant_id}/things/{device_id}/jobs (a device id is unique within its tenant only)."""
    return f"{settings().push_topic_prefix}/{device.tenant_id}/things/{device.device_id}/jobs"


def may_subscribe(device: Device, topic_filter: str) -> bool:
    """A device reads its own topics only: its topic root, or a filter under it. A wildcard may
    stand only below the root (`.../jobs/#`, `.../jobs/+`), never for a tenant or a device."""
    root = topic_root(device)
    if topic_filter == root or topic_filter == root + "/#":
        return True
    if not topic_filter.startswith(root + "/"):
        return False
    levels = topic_filter[len(root) + 1 :].split("/")
    for at, level in enumerate(levels):
        if level == "#":
            return at == len(levels) - 1
        if level != "+" and ("+" in level or "#" in level):
            return False
    return True


def poll_hint_s() -> int:
    """When a device that polls should poll next: the configured mean, jittered by +-20% so a
    fleet that started together does not poll together."""
    mean = settings().poll_hint_s
    return max(1, round(mean * _jitter.uniform(0.8, 1.2)))


# The wake: after a commit that made work due, the drain is told to run now rather than at the
# next schedule. The local server registers its drain thread; in the cloud it is an asynchronous
# invocation of the push function. A failed wake loses nothing: the schedule drains the rest.
WAKE_BACKOFF_S = 60.0  # after a failed wake, the container leaves it to the schedule this long
_quiet_until = [0.0]
_waker: Callable[[], None] | None = None
_lambda_client: Any = None
_lock = threading.Lock()


def set_waker(waker: Callable[[], None] | None) -> Callable[[], None] | None:
    """Register what `wake` calls (None: the cloud's, when PUSH_FUNCTION_NAME is set); returns the
    previous one."""
    global _waker
    previous, _waker = _waker, waker
    return previous


def wake() -> None:
    """Tell the drain there is work, without waiting for it and without ever failing the caller."""
    try:
        if _waker is not None:
            _waker()
            return
        function = settings().push_function_name
        if function and time.monotonic() >= _quiet_until[0]:
            _lambda().invoke(FunctionName=function, InvocationType="Event", Payload=json.dumps({"wake": True}))
    except Exception as exc:  # the schedule's drain publishes what this wake would have
        _quiet_until[0] = time.monotonic() + WAKE_BACKOFF_S  # no route to Lambda: no call pays for it again soon
        logger.warning("could not wake the push drain; the schedule will", extra={"error": type(exc).__name__})


def _lambda() -> Any:
    global _lambda_client
    with _lock:
        if _lambda_client is None:
            import boto3
            from botocore.config import Config

            config = Config(connect_timeout=0.5, read_timeout=1, retries={"total_max_attempts": 1})
            _lambda_client = boto3.client("lambda", config=config)
        return _lambda_client
