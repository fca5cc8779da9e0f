"""Invoking handlers in-process with the events API Gateway would send."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from jobs_core.domain import presign
from jobs_core.settings import settings
from jobs_local import devdb, devjwt
from jobs_local.invoke import request

EVENTS = devdb.ROOT / "events"


def invoke(
    method: str,
    path: str,
    *,
    token: str | None = None,
    claims: dict[str, str] | None = None,
    body: Any = None,
    raw_body: bytes | None = None,
    query: str = "",
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """Invoke the handler behind a route in-process, with the event API Gateway would send.
    Returns (status, parsed JSON body)."""
    sent = dict(headers or {})
    if token is not None:
        sent["x-provision-token"] = token
    data = raw_body if raw_body is not None else (json.dumps(body).encode() if body is not None else b"")
    if data:
        sent.setdefault("content-type", "application/json")
    target = f"{path}?{query}" if query else path
    reply = request(method, target, headers=sent, body=data, claims=claims).send()
    return reply.status, json.loads(reply.body) if reply.body else None


def device_put(job_id: str, token: str, **kwargs: Any) -> tuple[int, Any]:
    """A device's PUT of its execution of job_id (body=..., raw_body=..., headers=...)."""
    return invoke("PUT", f"/device/v1/jobs/{job_id}/execution", token=token, **kwargs)


def operator_claims(tenant_id: str | None, sub: str = "alice") -> dict[str, str]:
    """The claims the JWT authorizer would put in the request context (minted and verified for real)."""
    return devjwt.verify(devjwt.mint(tenant_id, sub))


def hintless(body: Any) -> Any:
    """A pending or start-next answer without its next-poll hint (jittered: no two are alike)."""
    if isinstance(body, dict):
        assert isinstance(body.pop("next_poll_in_seconds", 1), int)
    return body


@contextmanager
def signing_for(monkeypatch: pytest.MonkeyPatch, endpoint: str, access_key: str, secret_key: str) -> Iterator[None]:
    """Presigned URLs for the S3 at `endpoint`, signed with this key, as `make run` signs them."""
    monkeypatch.setenv("S3_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret_key)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    settings.cache_clear()
    presign.reset()
    try:
        yield
    finally:
        settings.cache_clear()
        presign.reset()
