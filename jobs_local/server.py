"""The local stand-in for API Gateway: serves the routes of template.yaml by invoking the same
handlers with API Gateway HTTP API (payload 2.0) events, checks operator JWTs the way the JWT
authorizer would, and serves /openapi.json.

    python -m jobs_local.server [--port 3000]

Starts the embedded PostgreSQL when DATABASE_URL is unset and applies pending migrations first.
Invocations run one at a time, as in a single Lambda container.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import jwt

from jobs_local import devjwt, openapi, template
from jobs_local.invoke import Request, api_gateway_event

MAX_BODY_BYTES = 6 * 1024 * 1024  # Lambda's synchronous payload limit
log = logging.getLogger("jobs_local.server")


class LocalApi:
    def __init__(self) -> None:
        self.routes = template.routes()
        for route in self.routes:
            route.lambda_handler()  # import every handler before the first request
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
        request = Request(route, api_gateway_event(route, method, target, headers, body, params, claims, source_ip))
        with self.lock:
            reply = request.send()
        return reply.status, reply.headers, reply.body


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

        # Every method HTTP defines reaches the route table, as in API Gateway: an unrouted one is
        # 404 JSON. Any other word in the method's place is answered by send_error, below.
        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_TRACE = do_CONNECT = _dispatch

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            """Requests refused before any route (a malformed request line or header, a method HTTP
            does not define): a JSON body like every other answer, never an HTML page."""
            status = 404 if code == 501 else code  # an unknown method routes nowhere, as in API Gateway
            body = json.dumps({"message": message or "Bad Request"}).encode()
            self.close_connection = True
            self._reply(status, {"content-type": "application/json", "connection": "close"}, body)

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
