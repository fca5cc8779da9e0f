"""The embedded S3 of `make run`: moto's S3 server (pip-installed) on S3_PORT (default 4566), where
an operator uploads firmware files with the AWS CLI or boto3 and a device downloads them through
the presigned URLs its job documents give it.

moto does not check signatures. A presigned GET is checked here, as S3 does: the signature must be
the one the service's key makes for that URL, and the URL must not have expired (403 otherwise).
Everything else (the operator's uploads, signed in headers) goes to moto as it is. Objects live
in memory: they are gone when `make run` stops.
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, unquote

from jobs_core.domain import presign
from jobs_core.domain.documents import S3Object

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
ACCESS_KEY = "local"  # the credentials `make run` signs with unless AWS_ACCESS_KEY_ID is set
SECRET_KEY = "local-secret"  # noqa: S105 (moto accepts any; nothing is protected by it)


def _denied(start_response: Callable[..., Any], code: str, message: str) -> list[bytes]:
    body = f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>'
    start_response("403 Forbidden", [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
    return [body.encode()]


def presigned_check(app: WsgiApp) -> WsgiApp:
    """Refuse a presigned GET whose signature or expiry is wrong; pass everything else to `app`."""

    def checked(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        if "X-Amz-Signature" not in query or environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return app(environ, start_response)
        try:
            signed_at = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            expires = int(query["X-Amz-Expires"])
            region = query["X-Amz-Credential"].split("/")[2]
            bucket, _, key = unquote(environ.get("PATH_INFO", "")).lstrip("/").partition("/")
        except (KeyError, ValueError, IndexError):
            return _denied(start_response, "AuthorizationQueryParametersError", "malformed presigned URL")
        if datetime.now(UTC) > signed_at + timedelta(seconds=expires):
            return _denied(start_response, "AccessDenied", "Request has expired")
        expected = presign.url(S3Object(bucket, key, region), expires, now=signed_at) or ""
        given = dict(parse_qsl(expected.partition("?")[2])).get("X-Amz-Signature", "")
        if not hmac.compare_digest(given, query["X-Amz-Signature"]):
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
        self._server = make_server(
            "127.0.0.1", self.port, presigned_check(app), threaded=True, request_handler=MotoRequestHandler
        )
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="embedded-s3")
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
