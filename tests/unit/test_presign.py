"""Presigned URLs: the same URL botocore's S3 query signer makes, and the document placeholders."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from unittest import mock
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from jobs_core.domain import documents, presign
from jobs_core.domain.documents import S3Object
from jobs_core.errors import Unprocessable
from jobs_core.settings import settings

NOW = datetime(2026, 12, 4, 5, 6, 7, tzinfo=UTC)


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("DATABASE_URL", "postgresql://unused")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalr/K7MDENG+bPxRfiCYEXAMPLEKEY")
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    monkeypatch.delenv("S3_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    settings.cache_clear()
    presign.reset()
    yield
    settings.cache_clear()
    presign.reset()


def botocore_url(url: str, region: str, expires: int, token: str | None = None) -> str:
    """What botocore's S3 query signer makes of the same request at the same instant."""
    request = AWSRequest(method="GET", url=url)
    credentials = Credentials("AKIDEXAMPLE", "wJalr/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    with mock.patch("botocore.auth.get_current_datetime", return_value=NOW.replace(tzinfo=None)):
        S3SigV4QueryAuth(credentials, "s3", region, expires=expires).add_auth(request)
    return str(request.url)


def same(ours: str | None, theirs: str) -> None:
    assert ours is not None
    a, b = urlsplit(ours), urlsplit(theirs)
    assert (a.scheme, a.netloc, a.path) == (b.scheme, b.netloc, b.path)
    assert sorted(parse_qsl(a.query)) == sorted(parse_qsl(b.query))  # the signature among them


KEY = "sensor/v 2+1/ä.bin"


def test_a_url_is_botocores_for_the_same_instant() -> None:
    ours = presign.url(S3Object("firmware", KEY, None), 900, NOW)
    theirs = botocore_url(f"https://firmware.s3.eu-central-1.amazonaws.com/{quote(KEY)}", "eu-central-1", 900)
    same(ours, theirs)


def test_with_a_session_token_the_regional_form_and_a_dotted_bucket() -> None:
    with mock.patch.dict("os.environ", {"AWS_SESSION_TOKEN": "FwoG/token+=="}):
        presign.reset()
        ours = presign.url(S3Object("fw.example", KEY, "us-west-2"), 60, NOW)
    theirs = botocore_url(
        f"https://s3.us-west-2.amazonaws.com/fw.example/{quote(KEY)}", "us-west-2", 60, "FwoG/token+=="
    )
    same(ours, theirs)
    assert "X-Amz-Security-Token" in ours  # type: ignore[operator]


def test_an_endpoint_url_gets_path_style_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3_ENDPOINT_URL", "http://127.0.0.1:4566")
    settings.cache_clear()
    ours = presign.url(S3Object("firmware", KEY, None), 3600, NOW)
    same(ours, botocore_url(f"http://127.0.0.1:4566/firmware/{quote(KEY)}", "eu-central-1", 3600))


def test_a_changed_url_has_another_signature() -> None:
    one = presign.url(S3Object("firmware", "a.bin", None), 900, NOW)
    assert one != presign.url(S3Object("firmware", "b.bin", None), 900, NOW)
    assert one != presign.url(S3Object("firmware", "a.bin", None), 901, NOW)


def test_device_params_sign_each_placeholder_and_leave_the_rest() -> None:
    params: dict[str, Any] = {
        "url": "${aws:iot:s3-presigned-url:https://s3.amazonaws.com/firmware/a.bin}",
        "mirrors": ["see ${aws:iot:s3-presigned-url-v2:https://s3.us-east-2.amazonaws.com/firmware/b.bin} too", 3],
        "keep": "${aws:iot:parameter:x}",
    }
    out = presign.device_params({"params": params, "presign_ttl": 120})
    assert out["url"].startswith("https://firmware.s3.eu-central-1.amazonaws.com/a.bin?")
    assert (
        out["mirrors"][0].startswith("see https://firmware.s3.us-east-2.amazonaws.com/b.bin?")
        and out["mirrors"][1] == 3
    )
    assert "X-Amz-Expires=120" in out["url"] and out["keep"] == params["keep"]
    assert params["url"].startswith("${")  # the stored document is not changed
    assert presign.device_params({"params": params, "presign_ttl": None}) is params


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/b/k",
        "https://s3.amazonaws.com/bucket",
        "https://s3.amazonaws.com/UPPER/k",
        "http://s3.amazonaws.com/bucket/k",
        "https://s3.amazonaws.com/bucket/k?versionId=1",
        "https://s3.evil.com.amazonaws.com/bucket/k",
        "https://s3.amazonaws.com/b/" + "k" * 1025,
    ],
)
def test_a_placeholder_must_name_an_s3_object(url: str) -> None:
    with pytest.raises(Unprocessable, match="S3 object"):
        documents.s3_objects({"u": f"${{aws:iot:s3-presigned-url:{url}}}"})


def test_parameters_fill_every_string_and_must_match() -> None:
    document = {"a": "${aws:iot:parameter:v}", "b": ["x-${aws:iot:parameter:v}-${aws:iot:parameter:w}"], "c": 1}
    assert documents.filled(document, {"v": "1", "w": "2"}) == {"a": "1", "b": ["x-1-2"], "c": 1}
    with pytest.raises(Unprocessable, match="missing w"):
        documents.filled(document, {"v": "1"})
    with pytest.raises(Unprocessable, match="no parameter z"):
        documents.filled(document, {"v": "1", "w": "2", "z": "3"})
    documents.check_template({"u": "${aws:iot:s3-presigned-url:https://s3.amazonaws.com/b-1/${aws:iot:parameter:v}}"})
