"""Debian's Mosquitto, the broker people run, on a port of its own: the tests and the bench start
one (`running`) and point the service at it with MQTT_URL, as a deployment that brings its own
broker does.

The service publishes as its own user (a password file); subscribers connect without one and read,
by the ACL's pattern, the topics of the device their client id names. Mosquitto cannot check this
service's provision tokens (it stores its own password hashes; the service keeps only SHA-256
hashes of tokens): with MQTT_URL, who may read what is the broker's configuration. The token check
is the embedded broker's (`make run`) and AWS IoT Core's custom authorizer's.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from jobs_local.pooler import free_port, wait_until_listening

INSTALL_HINT = "Mosquitto is missing: `make mosquitto` installs Debian's package (as root)"
SERVICE_USER = "iot-jobs"


@dataclass(frozen=True)
class Broker:
    url: str  # mqtt://127.0.0.1:port
    username: str  # the service's
    password: str


def executable(name: str = "mosquitto") -> str:
    """A Mosquitto program; raises (never skips) when it is not installed."""
    found = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None
    )
    if found is None:
        raise RuntimeError(INSTALL_HINT)
    return found


@contextmanager
def running(prefix: str = "iotjobs") -> Iterator[Broker]:
    port = free_port()
    password = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="mosquitto-") as scratch:
        work = Path(scratch)
        passwords = work / "passwords"
        passwords.write_text("")
        subprocess.run(  # noqa: S603
            [executable("mosquitto_passwd"), "-b", str(passwords), SERVICE_USER, password], check=True
        )
        (work / "acl").write_text(
            f"user {SERVICE_USER}\ntopic write {prefix}/#\n\npattern read {prefix}/+/things/%c/jobs/#\n"
        )
        log = work / "mosquitto.log"
        (work / "mosquitto.conf").write_text(
            "\n".join(
                [
                    f"listener {port} 127.0.0.1",
                    "allow_anonymous true",
                    f"password_file {passwords}",
                    f"acl_file {work / 'acl'}",
                    "persistence false",
                    "max_inflight_messages 1000",
                    "max_queued_messages 10000",
                    f"log_dest file {log}",
                    "",
                ]
            )
        )
        if os.geteuid() == 0:  # Mosquitto drops root for the user `mosquitto`, which must read these
            runner = pwd.getpwnam("mosquitto") if _has_user("mosquitto") else pwd.getpwnam("nobody")
            for path in (work, passwords, work / "acl", work / "mosquitto.conf"):
                os.chown(path, runner.pw_uid, runner.pw_gid)
            (work / "mosquitto.conf").write_text((work / "mosquitto.conf").read_text() + f"user {runner.pw_name}\n")
        process = subprocess.Popen(  # noqa: S603
            [executable(), "-c", str(work / "mosquitto.conf")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_until_listening(port, process, log, "Mosquitto")
            yield Broker(f"mqtt://127.0.0.1:{port}", SERVICE_USER, password)
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
