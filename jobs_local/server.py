"""The local stand-in for API Gateway: serves the routes of template.yaml by invoking the same
handlers with API Gateway HTTP API (payload 2.0) events, checks operator JWTs the way the JWT
authorizer would, and serves /openapi.json.

    python -m jobs_local.server [--port 3000]

Starts the embedded PostgreSQL when DATABASE_URL is unset and applies pending migrations first.
Invocations run one at a time, as in a single Lambda container.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jwt

from jobs_local import devjwt, openapi, template
from jobs_local.lambda_context import LocalContext

MAX_BODY_BYTES = 6 * 1024 * 1024  # Lambda's synchronous payload limit
log = logging.getLogger("jobs_local.server")


def api_gateway_event(
    route: template.Route,
    method: str,
    target: str,
    headers: dict[str, str],
    body: bytes,
    path_parameters: dict[str, str],
    claims: dict[str, str] | None,
    source_ip: str,
) -> dict[str, Any]:
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
        context["authorizer"] = {"jwt": {"claims": claims, "scopes": None}}
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.route_key,
        "rawPath": url.path,
        "rawQueryString": url.query,
        "headers": headers,
        "requestContext": context,
        "isBase64Encoded": encoded,
    }
    if query:
        event["queryStringParameters"] = query
    if path_parameters:
        event["pathParameters"] = path_parameters
    if body:
        event["body"] = text
    return event


class LocalApi:
    def __init__(self) -> None:
        self.routes = template.routes()
        self.handlers = {route.route_key: route.lambda_handler() for route in self.routes}
        self.openapi = json.dumps(openapi.schema()).encode()
        self.lock = threading.Lock()  # one invocation at a time, like one container

    def authorize(self, headers: dict[str, str]) -> dict[str, str] | None:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        try:
            return devjwt.verify(token.strip())
        except jwt.InvalidTokenError:
            return None

    def handle(
        self, method: str, target: str, headers: dict[str, str], body: bytes, source_ip: str
    ) -> tuple[int, dict[str, str], bytes]:
        path = urlsplit(target).path
        if method == "GET" and path == "/openapi.json":
            return 200, {"content-type": "application/json"}, self.openapi
        found = template.route_for(method, path, self.routes)
        if found is None:
            return 404, {"content-type": "application/json"}, b'{"message":"Not Found"}'
        route, params = found
        claims = None
        if route.authorized:
            claims = self.authorize(headers)
            if claims is None:  # the authorizer refuses before any function runs
                return 401, {"content-type": "application/json"}, b'{"message":"Unauthorized"}'
        event = api_gateway_event(route, method, target, headers, body, params, claims, source_ip)
        with self.lock:
            result = self.handlers[route.route_key](event, LocalContext(function_name=route.function))
        payload = result.get("body") or ""
        data = base64.b64decode(payload) if result.get("isBase64Encoded") else payload.encode()
        return int(result.get("statusCode", 200)), dict(result.get("headers") or {}), data


def serve(port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    api = LocalApi()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _dispatch(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length > MAX_BODY_BYTES:
                self._reply(413, {"content-type": "application/json"}, b'{"message":"Request Entity Too Large"}')
                self.close_connection = True
                return
            body = self.rfile.read(length) if length else b""
            headers: dict[str, str] = {}
            for name, value in self.headers.items():
                name = name.lower()
                headers[name] = f"{headers[name]},{value}" if name in headers else value
            try:
                status, out_headers, data = api.handle(self.command, self.path, headers, body, self.client_address[0])
            except Exception:  # what API Gateway answers when a function fails
                log.exception("invocation failed")
                status, out_headers, data = (
                    500,
                    {"content-type": "application/json"},
                    b'{"message":"Internal Server Error"}',
                )
            self._reply(status, out_headers, data)

        def _reply(self, status: int, headers: dict[str, str], data: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                if name.lower() not in ("content-length", "connection"):
                    self.send_header(name, value)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def __getattr__(self, name: str) -> Any:
            # Every method reaches the route table, as in API Gateway: an unrouted one is 404 JSON.
            if name.startswith("do_"):
                return self._dispatch
            raise AttributeError(name)

        def log_message(self, format: str, *args: Any) -> None:
            log.info("%s %s", self.address_string(), format % args)

    return ThreadingHTTPServer((host, port), Handler)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3000")))
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    from jobs_core.migrate import migrate
    from jobs_local.devdb import database_url

    url = database_url()
    os.environ["DATABASE_URL"] = url  # the handlers' settings read it
    applied = migrate(url)
    log.info("migrations applied: %s", ", ".join(applied) or "none pending")
    server = serve(args.port, args.host)
    log.info("serving on http://%s:%d (OpenAPI at /openapi.json)", args.host, server.server_address[1])
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
