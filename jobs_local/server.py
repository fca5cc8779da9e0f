"""The local stand-in for API Gateway, EventBridge Scheduler and AWS IoT Core: serves the routes
of template.yaml by invoking the same handlers with API Gateway HTTP API (payload 2.0) events,
checks operator JWTs the way the JWT authorizer would, serves /openapi.json, invokes the
scheduled functions (the sweep, the push drain) on the template's schedule, and pushes: an
embedded MQTT broker on MQTT_PORT (default 1884) that checks provision tokens as IoT Core's
custom authorizer does, unless MQTT_URL names another broker, and the push drain woken after
every commit that made work due (as the functions invoke it in the cloud); and an embedded S3
(moto's) on S3_PORT (default 4566) for firmware files, unless S3_ENDPOINT_URL names another.

    python -m jobs_local.server [--port 3000] [--log .local/server.log]

It prints one line (where the API is, how to get a token); everything else, the embedded
database's output included, goes to the log file.

Starts the embedded PostgreSQL when DATABASE_URL is unset and applies pending migrations first.
Invocations run one at a time, as in a single Lambda container. Stopping it in any way (Ctrl-C,
kill, its parent `make run` killed) stops everything it started.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlsplit

import jwt
import psycopg

from jobs_local import devdb, devjwt, openapi, template
from jobs_local.broker import EmbeddedBroker
from jobs_local.invoke import Request, api_gateway_event
from jobs_local.lambda_context import LocalContext
from jobs_local.s3 import BadSetting, start_s3

if TYPE_CHECKING:
    from jobs_core.aws.notify import Publisher

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
        if method in ("GET", "HEAD") and path == "/openapi.json":
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


def serve(api: LocalApi, port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _dispatch(self) -> None:
            if "transfer-encoding" in self.headers:
                return self.send_error(411, "send the body with a Content-Length")
            declared = self.headers.get("content-length") or "0"
            if not declared.isdigit():  # -1, abc, 1e3: not a length
                return self.send_error(400, "Content-Length is not a length")
            length = int(declared)
            if length > MAX_BODY_BYTES:
                return self.send_error(413, "Request Entity Too Large")
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
            if self.close_connection:
                self.send_header("connection", "close")
            self.end_headers()
            if self.command != "HEAD":  # a HEAD answer has the headers of a GET and no body
                self.wfile.write(data)

        # Every method HTTP defines reaches the route table, as in API Gateway: an unrouted one is
        # 404 JSON. Any other word in the method's place is answered by send_error, below.
        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_TRACE = do_CONNECT = _dispatch

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            """Requests refused before any route (a malformed request line, header or length, a
            method HTTP does not define): a JSON body like every other answer, and the connection
            closed, since what follows on it cannot be trusted."""
            status = 404 if code == 501 else code  # an unknown method routes nowhere, as in API Gateway
            self.close_connection = True
            self._reply(status, {"content-type": "application/json"}, json.dumps({"message": message}).encode())

        def log_message(self, format: str, *args: Any) -> None:
            log.info("%s %s", self.address_string(), format % args)

    return ThreadingHTTPServer((host, port), Handler)


class Schedule(threading.Thread):
    """EventBridge Scheduler's part: invoke each scheduled function with its event file, on the
    template's rate, one invocation at a time with the routes (as in one container)."""

    def __init__(self, api: LocalApi, wake_push: Callable[[], None]) -> None:
        super().__init__(daemon=True, name="schedule")
        self.api = api
        self.wake_push = wake_push
        self.stopped = threading.Event()
        self.jobs = [(job, job.lambda_handler(), job.event()) for job in template.schedules()]

    def run(self) -> None:
        due = {job.function: time.monotonic() + job.every_s for job, _, _ in self.jobs}
        while not self.stopped.wait(1.0):
            for job, handler, event in self.jobs:
                if time.monotonic() < due[job.function]:
                    continue
                due[job.function] = time.monotonic() + job.every_s
                if job.module == "push_notify":  # the push function's own container: the drain thread
                    self.wake_push()
                    continue
                try:
                    with self.api.lock:
                        result = handler(event, LocalContext(function_name=job.function))
                    log.info("%s: %s", job.function, json.dumps(result, default=str))
                except Exception:  # what Lambda does with a failed scheduled run: log it, try next time
                    log.exception("%s failed", job.function)


class PushDrain(threading.Thread):
    """The push function's container, woken after every commit that made work due (as the functions
    invoke it asynchronously in the cloud): drains the outbox with a connection and a publisher of
    its own, beside the API's invocations. The schedule's run of the push function is the safety
    net here as there."""

    def __init__(self, database_url: str, publisher: Publisher | None = None) -> None:
        super().__init__(daemon=True, name="push")
        from jobs_core.store.db import Database

        self.db = Database(lambda refresh: database_url)
        self.publisher = publisher  # None: the one the settings name
        self.due = threading.Event()
        self.stopped = threading.Event()

    def wake(self) -> None:
        self.due.set()

    def run(self) -> None:
        from jobs_core.aws import notify
        from jobs_core.domain import notifications
        from jobs_core.settings import settings

        publisher = self.publisher or notify.publisher_from(settings())
        if publisher is None:
            return
        while not self.stopped.is_set():
            self.due.wait(5.0)
            self.due.clear()
            if self.stopped.is_set():
                break
            try:
                notifications.drain(self.db, lambda notices: notify.publish_notices(publisher, notices))
            except Exception:  # a broker away, the database restarting: the next wake or the schedule
                log.warning("push drain failed; it runs again at the next wake", exc_info=True)
        publisher.close()
        self.db.close()

    def stop(self) -> None:
        self.stopped.set()
        self.due.set()
        self.join(10)


def start_push(database_url: str, mqtt_port: int) -> tuple[EmbeddedBroker | None, PushDrain]:
    """The embedded broker (unless MQTT_URL names one) and the drain; the settings the handlers
    read then name the broker and the service's credentials on it."""
    from jobs_core.aws import notify
    from jobs_core.domain import notifications
    from jobs_core.settings import settings
    from jobs_core.store.db import Database

    broker = None
    if not os.environ.get("MQTT_URL"):
        password = secrets.token_urlsafe(24)
        identity_db = Database(lambda refresh: database_url)
        identity_lock = threading.Lock()  # one connection: the broker asks from several threads

        def identify(token: str | None) -> notifications.Device | None:
            with identity_lock:
                return notifications.identify(identity_db, token)

        broker = EmbeddedBroker(
            port=mqtt_port, identify=identify, service_username="iot-jobs", service_password=password
        )
        broker.start()
        os.environ.update({"MQTT_URL": broker.url, "MQTT_USERNAME": "iot-jobs", "MQTT_PASSWORD": password})
        # The service publishes in the broker's process, as no client: a client here would share
        # the process's file descriptors with every device's connection, past what select() takes.
        notify.use_publisher(broker)
    settings.cache_clear()
    drain = PushDrain(database_url, broker)
    drain.start()
    notifications.set_waker(drain.wake)
    return broker, drain


def stop_with_parent() -> None:
    """`make run` killed (SIGTERM, SIGKILL) leaves its child running, reparented: exit as a SIGTERM
    does (through atexit: the embedded database stops) when the parent changes."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def quiet(log_path: Path) -> TextIO:
    """From here on, everything this process and its children write to stdout and stderr goes to
    the log file; returns a stream to the terminal, for the one line it should show."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    terminal = os.fdopen(os.dup(1), "w", buffering=1)
    with log_path.open("a") as out:
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr, force=True)
    return terminal


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3000")))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--log", type=Path, default=devdb.ROOT / ".local" / "server.log")
    parser.add_argument("--mqtt-port", type=int, default=int(os.environ.get("MQTT_PORT", "1884")))
    parser.add_argument("--s3-port", type=int, default=int(os.environ.get("S3_PORT", "4566")))
    args = parser.parse_args()
    devdb.exit_on_signals()  # SIGTERM and SIGHUP exit as Ctrl-C does: the embedded database stops with us
    stop_with_parent()
    terminal = quiet(args.log)

    from jobs_core.store.migrate import migrate

    try:
        url = devdb.database_url()
        os.environ["DATABASE_URL"] = url  # the handlers' settings read it
        applied = migrate(url)
        log.info("migrations applied: %s", ", ".join(applied) or "none pending")
        api = LocalApi()
        server = serve(api, args.port, args.host)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            print(f"error: port {args.port} is in use (another `make run`?); try PORT=3001 make run", file=terminal)
        else:
            print(f"error: {exc.strerror or exc} (details in {args.log})", file=terminal)
        log.exception("could not start")
        return 1
    except psycopg.Error as exc:
        print(f"error: the database: {type(exc).__name__} (details in {args.log})", file=terminal)
        log.exception("could not start")
        return 1
    try:
        s3 = start_s3(args.s3_port)
    except BadSetting as exc:
        server.server_close()
        print(f"error: {exc}", file=terminal)
        return 1
    except OSError as exc:
        server.server_close()
        if exc.errno == errno.EADDRINUSE:
            print(
                f"error: S3 port {args.s3_port} is in use; try S3_PORT={args.s3_port + 1} make run"
                " (or S3_ENDPOINT_URL=http://host:port to use an S3 you run)",
                file=terminal,
            )
        else:
            print(f"error: the embedded S3: {exc.strerror or exc} (details in {args.log})", file=terminal)
        log.exception("could not start the embedded S3")
        return 1
    try:
        broker, drain = start_push(url, args.mqtt_port)
    except OSError as exc:
        server.server_close()
        if exc.errno == errno.EADDRINUSE:
            print(
                f"error: MQTT port {args.mqtt_port} is in use; try MQTT_PORT={args.mqtt_port + 1} make run"
                " (or MQTT_URL=mqtt://host:port to use a broker you run)",
                file=terminal,
            )
        else:
            print(f"error: the MQTT broker: {exc.strerror or exc} (details in {args.log})", file=terminal)
        log.exception("could not start the MQTT broker")
        if s3 is not None:
            s3.stop()
        return 1
    schedule = Schedule(api, drain.wake)
    schedule.start()
    base = f"http://{args.host}:{server.server_address[1]}"
    mqtt = os.environ["MQTT_URL"] + ("" if broker is not None else " (MQTT_URL)")
    files = os.environ["S3_ENDPOINT_URL"] + ("" if s3 is not None else " (S3_ENDPOINT_URL)")
    print(
        f"IoT Jobs on {base} (OpenAPI at {base}/openapi.json); push over MQTT on {mqtt};"
        f" firmware files on S3 at {files}; the sweep runs every minute; log: {args.log}\n"
        "  an operator token: .venv/bin/python tools/jobsctl.py token TENANT",
        file=terminal,
    )
    log.info("serving on %s, MQTT on %s", base, mqtt)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        schedule.stopped.set()
        server.server_close()
        drain.stop()
        if broker is not None:
            broker.stop()
        if s3 is not None:
            s3.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
