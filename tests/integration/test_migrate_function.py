"""The custom resource that migrates on deploy: it answers CloudFormation every time, with the
migrations applied, and FAILED (not silence) when it cannot."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, cast

import boto3
import migrate_database
import psycopg
import pytest
from aws_lambda_powertools.utilities.typing import LambdaContext
from moto import mock_aws
from psycopg.conninfo import conninfo_to_dict

from jobs_core.settings import settings
from jobs_local.lambda_context import LocalContext
from tests.factories import scratch_database
from tests.helpers import EVENTS


@pytest.fixture
def cloudformation() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A stand-in for the pre-signed S3 URL CloudFormation waits on."""
    answers: list[dict[str, Any]] = []

    class Capture(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            answers.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Capture)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/response", answers
    server.shutdown()


@pytest.fixture
def owner_secret(server_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    with scratch_database(server_url, "jobs_cfn") as url:
        yield from _with_secret(url, monkeypatch)


def _with_secret(url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    params = conninfo_to_dict(url)
    name = str(params["dbname"])
    for key, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "DATABASE_URL": "",
        "DATABASE_SSLMODE": "prefer",
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        arn = boto3.client("secretsmanager").create_secret(
            Name=name,
            SecretString=json.dumps(
                {
                    "host": params.get("host", "127.0.0.1"),
                    "port": int(params.get("port") or 5432),
                    "dbname": name,
                    "username": params.get("user", "postgres"),
                    "password": "unused-with-trust-auth",
                }
            ),
        )["ARN"]
        monkeypatch.setenv("DATABASE_SECRET_ARN", arn)
        settings.cache_clear()
        yield arn, url
    settings.cache_clear()


CONTEXT = cast(LambdaContext, LocalContext(function_name="MigrateDatabaseFunction"))  # the same attributes


def event(kind: str, response_url: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / "migrate_database.json").read_text())
    return loaded | {"RequestType": kind, "ResponseURL": response_url}


def test_migrates_on_create_and_update_and_keeps_the_data_on_delete(
    cloudformation: tuple[str, list[dict[str, Any]]], owner_secret: tuple[str, str]
) -> None:
    url, answers = cloudformation
    for kind in ("Create", "Update", "Delete"):
        migrate_database.lambda_handler(event(kind, url), CONTEXT)
    assert [(a["Status"], a["Data"]) for a in answers] == [
        (
            "SUCCESS",
            {
                "Applied": "0001_schema,0002_runtime_membership,0003_device_calls,0004_hardening,0005_lifecycle,"
                "0006_rollouts,0007_aws_api,0008_fleet,0009_targets,0010_push,0011_templates"
            },
        ),
        ("SUCCESS", {"Applied": "none"}),
        ("SUCCESS", {}),
    ]
    assert {a["PhysicalResourceId"] for a in answers} == {"iot-jobs-schema"}
    with psycopg.connect(owner_secret[1]) as conn:
        assert conn.execute("SELECT count(*) FROM jobs").fetchone() == (0,)


def test_a_failure_is_reported_to_cloudformation(
    cloudformation: tuple[str, list[dict[str, Any]]], owner_secret: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, answers = cloudformation
    monkeypatch.setenv("DATABASE_HOST", "127.0.0.1")
    monkeypatch.setenv("DB_CONNECT_TIMEOUT_S", "1")
    secret = json.loads(boto3.client("secretsmanager").get_secret_value(SecretId=owner_secret[0])["SecretString"])
    boto3.client("secretsmanager").put_secret_value(
        SecretId=owner_secret[0], SecretString=json.dumps(secret | {"port": 1})
    )
    settings.cache_clear()
    migrate_database.lambda_handler(event("Create", url), CONTEXT)
    assert len(answers) == 1 and answers[0]["Status"] == "FAILED"
    assert answers[0]["Reason"].startswith("migration failed: OperationalError")
    assert "unused-with-trust-auth" not in answers[0]["Reason"]
