"""The embedded S3 of `make run`: moto's S3 server (pip-installed) on S3_PORT (default 4566), where
an operator uploads firmware files with the AWS CLI or boto3 and a device downloads them through
the presigned URLs its job documents give it.

moto does not check signatures. A presigned GET is checked here, as S3 does: the signature must be
the one the service's key makes for that URL, and the URL must not have expired (403 otherwise).
Everything else (the operator's uploads, signed in headers) goes to moto as it is. Objects live
in memory: they are gone when `make run` stops.
"""

from __future__ import annotations

import errno
import hmac
import os
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from jobs_core.domain import presign
from jobs_core.domain.documents import S3Object
from jobs_core.settings import settings

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
ACCESS_KEY = "local"  # the credentials `make run` signs with unless AWS_ACCESS_KEY_ID is set
SECRET_KEY = "local-secret"  # noqa: S105 (moto accepts any; nothing is protected by it)
MAX_EXPIRES_S = 7 * 24 * 3600  # S3's limit for a presigned URL


def _denied(start_response: Callable[..., Any], code: str, message: str) -> list[bytes]:
    body = f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>'
    start_response("403 Forbidden", [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
    return [body.encode()]


def presigned_check(app: WsgiApp) -> WsgiApp:
    """Refuse a presigned GET whose signature or expiry is wrong; pass everything else to `app`."""

    def checked(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        raw = urlsplit(environ.get("RAW_URI") or environ.get("REQUEST_URI") or "")
        query = dict(parse_qsl(raw.query, keep_blank_values=True))
        if "X-Amz-Signature" not in query or environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return app(environ, start_response)
        try:
            signed_at = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            expires = int(query["X-Amz-Expires"])
            region = query["X-Amz-Credential"].split("/")[2]
            bucket, _, key = unquote(raw.path).lstrip("/").partition("/")
            if not 1 <= expires <= MAX_EXPIRES_S:
                raise ValueError(expires)
        except (KeyError, ValueError, IndexError):
            return _denied(start_response, "AuthorizationQueryParametersError", "malformed presigned URL")
        if datetime.now(UTC) > signed_at + timedelta(seconds=expires):
            return _denied(start_response, "AccessDenied", "Request has expired")
        # The URL this service would sign for that object at that instant: every query parameter
        # the same (one added, such as response-content-type, is not signed), the signature too.
        expected = dict(parse_qsl(urlsplit(presign.url(S3Object(bucket, key, region), expires, signed_at) or "").query))
        if set(expected) != set(query) or not all(
            hmac.compare_digest(expected[name], query[name]) for name in expected
        ):
            return _denied(start_response, "SignatureDoesNotMatch", "the signature does not match")
        return app(environ, start_response)

    return checked


class EmbeddedS3:
    """moto's S3 on 127.0.0.1:port, in a thread of this process. The port is bound in start(), so
    a busy one raises there (OSError EADDRINUSE)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        from moto.moto_server.werkzeug_app import MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        app = create_backend_app("s3")
        try:
            self._server = make_server(
                "127.0.0.1", self.port, presigned_check(app), threaded=True, request_handler=MotoRequestHandler
            )
        except SystemExit:  # werkzeug's answer to a busy port: say it as the broker's start does
            raise OSError(errno.EADDRINUSE, f"port {self.port} is in use") from None
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="embedded-s3")
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)


class BadSetting(Exception):
    """A setting `make run` cannot start with; its message is the one line shown."""


def start_s3(port: int) -> EmbeddedS3 | None:
    """The embedded S3, unless S3_ENDPOINT_URL names one; presigned URLs then point at it, signed
    with the local key it checks them with."""
    if os.environ.get("S3_ENDPOINT_URL"):
        settings.cache_clear()
        try:
            settings()
        except ValueError:  # pydantic's ValidationError
            raise BadSetting(
                f"S3_ENDPOINT_URL must be http(s)://host[:port], not {os.environ['S3_ENDPOINT_URL']!r}"
            ) from None
        return None
    s3 = EmbeddedS3(port)
    s3.start()
    os.environ.update({"S3_ENDPOINT_URL": s3.url, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY})
    os.environ.pop("AWS_SESSION_TOKEN", None)
    settings.cache_clear()
    presign.reset()
    return s3
