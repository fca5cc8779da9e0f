"""The example agents download the file a firmware document names: an operator uploads it to the
local server's embedded S3, creates a job from a template whose `url` is a presigned-URL
placeholder and whose version, size and sha256 are parameters, and each agent (native API,
AWS's iot-jobs-data) GETs the fresh presigned URL its document holds, checks the file, and
finishes SUCCEEDED with its size and SHA-256, or FAILED with the reason; the download's temporary
folder is gone after."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from jobs_local import devjwt
from jobs_local.devdb import ROOT
from jobs_local.pooler import free_port
from tests.conftest import local_server
from tests.e2e.test_e2e_http import bearer, http
from tests.factories import Register

BUCKET = "firmware"
PLACEHOLDER = "${aws:iot:s3-presigned-url:https://s3.amazonaws.com/firmware/sensor/fw-${aws:iot:parameter:version}.bin}"
TEMPLATE = {
    "template_id": "sensor-firmware",
    "document_type": "firmware",
    "document_params": {
        "version": "${aws:iot:parameter:version}",
        "url": PLACEHOLDER,
        "size": "${aws:iot:parameter:size}",
        "sha256": "${aws:iot:parameter:sha256}",
    },
    "presigned_url_config": {"expires_in_sec": 600},
}
AGENTS = ["native", "aws"]


@dataclass(frozen=True)
class Server:
    url: str
    s3_port: int


@pytest.fixture(scope="module")
def server(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A local server of this module's own, its embedded S3 on a port known here."""
    s3_port = free_port()
    environment = {k: v for k, v in env.items() if k != "S3_ENDPOINT_URL"} | {"S3_PORT": str(s3_port)}
    with local_server(environment, tmp_path_factory.mktemp("firmware") / "server.log") as url:
        yield Server(url, s3_port)


@pytest.fixture(scope="module")
def image(server: Server) -> bytes:
    """A firmware file an operator uploaded: s3://firmware/sensor/fw-2.1.bin."""
    s3 = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{server.s3_port}",
        aws_access_key_id="local",
        aws_secret_access_key="local-secret",
        region_name="us-east-1",
    )
    s3.create_bucket(Bucket=BUCKET)
    data = os.urandom(300_000)
    s3.put_object(Bucket=BUCKET, Key="sensor/fw-2.1.bin", Body=data)
    return data


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def create_job(server: Server, tenant: str, device: str, **fields: Any) -> None:
    operator = bearer(devjwt.mint(tenant))
    body = {"job_id": "fw", "target_device_id": device, **fields}
    status, created = http(server.url, "POST", "/customer/jobs", headers=operator, body=body)
    assert status == 201, created


def from_template(server: Server, tenant: str, device: str, parameters: dict[str, str]) -> None:
    operator = bearer(devjwt.mint(tenant))
    status, made = http(server.url, "POST", "/customer/job-templates", headers=operator, body=TEMPLATE)
    assert status == 201, made
    create_job(server, tenant, device, template_id=TEMPLATE["template_id"], document_parameters=parameters)


def run_agent(kind: str, server: Server, device: str, token: str, tmp_path: Path) -> str:
    """The agent, --once, in a process of its own with a temporary folder of its own (empty after);
    what it said of job fw."""
    if kind == "native":
        args = ["examples/device_agent.py", "--url", server.url, "--token", token, "--once"]
    else:
        args = ["examples/aws_device_agent.py", "--endpoint", server.url, "--thing", device, "--token", token, "--once"]
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    done = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(temporary)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-4000:]
    assert list(temporary.iterdir()) == []  # the download is deleted
    [said] = done.stdout.splitlines()
    return said.replace(" attempt 1", "")  # the AWS agent's words as the native one's


def execution(server: Server, tenant: str, device: str) -> dict[str, Any]:
    operator = bearer(devjwt.mint(tenant))
    status, found = http(server.url, "GET", f"/customer/jobs/fw/executions/{device}", headers=operator)
    assert status == 200, found
    return dict(found)


@pytest.mark.parametrize("kind", AGENTS)
def test_the_agent_downloads_the_file_and_checks_its_size_and_sha256(
    kind: str, server: Server, image: bytes, tenant: str, register: Register, tmp_path: Path
) -> None:
    device, token = next(iter(register(tenant, 1, "sensor").items()))
    from_template(server, tenant, device, {"version": "2.1", "size": str(len(image)), "sha256": sha256(image)})

    assert run_agent(kind, server, device, token, tmp_path) == "fw: SUCCEEDED"
    done = execution(server, tenant, device)
    assert done["status"] == "SUCCEEDED"
    details = done["status_details"]
    assert (details["downloaded"], details["sha256"]) == (str(len(image)), sha256(image))
    assert done["attempts"] == []


@pytest.mark.parametrize("kind", AGENTS)
def test_a_size_may_be_an_integer_and_a_hash_may_be_left_out(
    kind: str, server: Server, image: bytes, tenant: str, register: Register, tmp_path: Path
) -> None:
    """A job without a template: the placeholder in its own document, its size a JSON number."""
    device, token = next(iter(register(tenant, 1, "sensor").items()))
    url = PLACEHOLDER.replace("${aws:iot:parameter:version}", "2.1")
    create_job(server, tenant, device, document_type="firmware", document_params={"url": url, "size": len(image)})

    assert run_agent(kind, server, device, token, tmp_path) == "fw: SUCCEEDED"
    assert execution(server, tenant, device)["status_details"]["sha256"] == sha256(image)


@pytest.mark.parametrize("kind", AGENTS)
@pytest.mark.parametrize(
    ("case", "reasons"),
    [
        ("wrong sha256", {"sha256 mismatch"}),
        ("wrong size", {"size mismatch"}),
        ("no such object", {"download: HTTP 404", "download: HTTP 403"}),
    ],
)
def test_a_file_not_as_the_document_says_or_not_there_fails_the_execution_with_the_reason(
    kind: str,
    case: str,
    reasons: set[str],
    server: Server,
    image: bytes,
    tenant: str,
    register: Register,
    tmp_path: Path,
) -> None:
    device, token = next(iter(register(tenant, 1, "sensor").items()))
    parameters = {"version": "2.1", "size": str(len(image)), "sha256": sha256(image)}
    if case == "wrong sha256":
        parameters["sha256"] = sha256(image + b"!")
    elif case == "wrong size":
        parameters["size"] = str(len(image) - 1)
    else:
        parameters["version"] = "9.9"  # sensor/fw-9.9.bin: never uploaded
    from_template(server, tenant, device, parameters)

    assert run_agent(kind, server, device, token, tmp_path) == "fw: FAILED"
    done = execution(server, tenant, device)
    assert done["status"] == "FAILED"
    assert set(done["status_details"]) == {"reason"} and done["status_details"]["reason"] in reasons
