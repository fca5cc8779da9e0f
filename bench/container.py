"""What a warm Lambda container does: hold one database connection, and call its handler
in-process with an event API Gateway built (once: building events is API Gateway's work, on other
machines, not the container's)."""

from __future__ import annotations

import json
import os
from typing import Any

from bench.harness import Call
from jobs_core.settings import settings
from jobs_core.store.db import Database, database, use_database
from jobs_local import template
from jobs_local.invoke import request


def handler_call(
    method: str, path: str, device_token: str, body: dict[str, Any] | None = None, expect: int = 200
) -> Call:
    """An in-process call of the handler behind a device route, with the event API Gateway sends."""
    data = json.dumps(body).encode() if body is not None else b""
    headers = {"x-provision-token": device_token, "content-type": "application/json"}
    prepared = request(method, path, headers=headers, body=data, among=template.routes())

    def call() -> object:
        response = prepared.invoke()
        assert response["statusCode"] == expect, response
        return response

    return call


def use_container_database(conninfo: str) -> Database:
    """Point the handlers' per-container database at conninfo (a fresh connection)."""
    close_container_database()
    os.environ["DATABASE_URL"] = conninfo
    settings.cache_clear()
    container = database()
    container.connection()
    return container


def close_container_database() -> None:
    previous = use_database(None)
    if previous is not None:
        previous.close()
