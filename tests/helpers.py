"""Invoking handlers in-process with the events API Gateway would send."""

from __future__ import annotations

import json
from typing import Any

from jobs_local import devdb, devjwt, template
from jobs_local.lambda_context import LocalContext
from jobs_local.server import api_gateway_event

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
    found = template.route_for(method, path)
    if found is None:
        raise LookupError(f"no route for {method} {path}")
    route, params = found
    sent = dict(headers or {})
    if token is not None:
        sent["x-provision-token"] = token
    data = raw_body if raw_body is not None else (json.dumps(body).encode() if body is not None else b"")
    if data:
        sent.setdefault("content-type", "application/json")
    target = f"{path}?{query}" if query else path
    event = api_gateway_event(route, method, target, sent, data, params, claims, "127.0.0.1")
    response = route.lambda_handler()(event, LocalContext(function_name=route.function))
    return response["statusCode"], json.loads(response["body"]) if response.get("body") else None


def operator_claims(tenant_id: str | None, sub: str = "alice") -> dict[str, str]:
    """The claims the JWT authorizer would put in the request context (minted and verified for real)."""
    return devjwt.verify(devjwt.mint(tenant_id, sub))
