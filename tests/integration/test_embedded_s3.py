"""`make run`'s S3 (jobs_local/s3.py): what an operator uploads, a device downloads through the URL
the service signed for it, and nothing else: S3's own refusals for an expired or altered URL."""

from __future__ import annotations

import errno
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from jobs_core.domain import presign
from jobs_core.domain.documents import S3Object
from jobs_local.pooler import free_port
from jobs_local.s3 import ACCESS_KEY, SECRET_KEY, EmbeddedS3
from tests.helpers import signing_for

KEYS = ["fw/sensor-2.1.bin", "fw/a+b c/ä%2B.bin"]


@pytest.fixture(scope="module")
def s3() -> Iterator[EmbeddedS3]:
    server = EmbeddedS3(free_port())
    server.start()
    client = boto3.client(
        "s3",
        endpoint_url=server.url,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
    )
    client.create_bucket(Bucket="firmware")
    for key in KEYS:
        client.put_object(Bucket="firmware", Key=key, Body=f"bytes of {key}".encode())
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def signing(s3: EmbeddedS3, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("DATABASE_URL", "postgresql://unused")
    with signing_for(monkeypatch, s3.url, ACCESS_KEY, SECRET_KEY):
        yield


def fetch(url: str, method: str = "GET") -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=10) as answer:  # noqa: S310
            return answer.status, answer.read()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read()


def signed(key: str, expires: int = 600, at: datetime | None = None) -> str:
    url = presign.url(S3Object("firmware", key, None), expires, at)
    assert url is not None
    return url


@pytest.mark.parametrize("key", KEYS)
def test_a_signed_url_downloads_the_object(key: str) -> None:
    assert fetch(signed(key)) == (200, f"bytes of {key}".encode())
    assert fetch(signed(key), "HEAD")[0] == 200


def test_an_expired_url_is_403() -> None:
    status, body = fetch(signed(KEYS[0], 60, datetime.now(UTC) - timedelta(seconds=61)))
    assert status == 403 and b"Request has expired" in body


@pytest.mark.parametrize(
    "change",
    [
        lambda url: url[:-1] + ("0" if url[-1] != "0" else "1"),  # the signature
        lambda url: url.replace("X-Amz-Expires=600", "X-Amz-Expires=3600"),
        lambda url: url.replace("sensor-2.1", "sensor-2.2"),
        lambda url: url + "&response-content-type=text/html",  # a parameter the signature does not cover
        lambda url: url.replace("X-Amz-Expires=600", "X-Amz-Expires=99999999999999999999"),
        lambda url: url.replace("X-Amz-Date=", "X-Amz-Date=x"),
    ],
)
def test_an_altered_url_is_403(change: object) -> None:
    assert callable(change)
    status, body = fetch(change(signed(KEYS[0])))
    assert status == 403 and b"<Error>" in body


def test_a_busy_port_raises_at_start() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError) as raised:
            EmbeddedS3(taken.getsockname()[1]).start()
    assert raised.value.errno == errno.EADDRINUSE
