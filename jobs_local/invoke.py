"""A route's handler invoked in-process with the event API Gateway would send it (HTTP API,
payload 2.0): what the local server does for every request, and the tests and the bench too.

    reply = request("PUT", "/device/v1/jobs/j1/execution", headers={...}, body=b"...").send()
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from jobs_local import template
from jobs_local.lambda_context import LocalContext


def api_gateway_event(
    route: template.Route,
    method: str,
    target: str,
    headers: Mapping[str, str],
    body: bytes,
    path_parameters: Mapping[str, str],
    claims: Mapping[str, Any] | None,
    source_ip: str,
) -> dict[str, Any]:
    """The event API Gateway builds for `method target` (target: path and query) on `route`.
    Header names are lower-case, as HTTP APIs pass them; claims are the JWT authorizer's."""
    url = urlsplit(target)
    query: dict[str, str] = {}
    for name, value in parse_qsl(url.query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value  # as API Gateway joins repeats
    try:
        text, encoded = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode(), True
    now = time.time()
    context: dict[str, Any] = {
        "accountId": "000000000000",
        "apiId": "local",
        "domainName": headers.get("host", "127.0.0.1"),
        "domainPrefix": "local",
        "http": {
            "method": method,
            "path": url.path,
            "protocol": "HTTP/1.1",
            "sourceIp": source_ip,
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": str(uuid.uuid4()),
        "routeKey": route.route_key,
        "stage": "$default",
        "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
        "timeEpoch": int(now * 1000),
    }
    if claims is not None:
        context["authorizer"] = {"jwt": {"claims": dict(claims), "scopes": None}}
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.route_key,
        "rawPath": url.path,
        "rawQueryString": url.query,
        "headers": dict(headers),
        "requestContext": context,
        "isBase64Encoded": encoded,
    }
    if query:
        event["queryStringParameters"] = query
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    if body:
        event["body"] = text
    return event


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Request:
    """One event for one route, ready to send (again and again: the bench reuses it)."""

    route: template.Route
    event: dict[str, Any]

    def invoke(self) -> dict[str, Any]:
        """The handler's own answer: what Lambda hands back to API Gateway."""
        return self.route.lambda_handler()(self.event, LocalContext(function_name=self.route.function))

    def send(self) -> Reply:
        """The answer as API Gateway turns it into an HTTP response."""
        result = self.invoke()
        payload = result.get("body") or ""
        data = base64.b64decode(payload) if result.get("isBase64Encoded") else payload.encode()
        return Reply(int(result.get("statusCode", 200)), dict(result.get("headers") or {}), data)


def request(
    method: str,
    target: str,
    *,
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
    claims: Mapping[str, Any] | None = None,
    source_ip: str = "127.0.0.1",
    among: list[template.Route] | None = None,
) -> Request:
    """The request for the route that serves method and target (LookupError if none does)."""
    found = template.route_for(method, urlsplit(target).path, among)
    if found is None:
        raise LookupError(f"no route for {method} {target}")
    route, params = found
    return Request(route, api_gateway_event(route, method, target, headers or {}, body, params, claims, source_ip))
