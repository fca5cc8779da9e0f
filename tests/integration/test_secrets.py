"""In the cloud the database location and credentials come from Secrets Manager (moto here)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws
from psycopg.conninfo import conninfo_to_dict

from jobs_core.settings import Settings
from jobs_core.store.db import Database, conninfo_from


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield boto3.client("secretsmanager")


def put_secret(client: object, name: str, database_url: str) -> str:
    params = conninfo_to_dict(database_url)
    secret = {
        "engine": "postgres",
        "host": params.get("host", "127.0.0.1"),
        "port": int(params.get("port") or 5432),
        "dbname": params["dbname"],
        "username": params.get("user", "postgres"),
        "password": params.get("password") or "unused-with-trust-auth",
    }
    arn: str = client.create_secret(Name=name, SecretString=json.dumps(secret))["ARN"]  # type: ignore[attr-defined]
    return arn


def test_connects_with_the_secret(secrets: object, database_url: str) -> None:
    arn = put_secret(secrets, "jobs/db", database_url)
    db = Database(conninfo_from(Settings(database_secret_arn=arn, database_sslmode="prefer")))
    with db.transaction() as conn:
        who = conn.execute("SELECT current_user AS role, current_database() AS name")
    assert who.fetchone() == {"role": "jobs_runtime", "name": conninfo_to_dict(database_url)["dbname"]}
    db.close()


def test_the_secret_is_cached_and_refetched_when_asked(secrets: object, database_url: str) -> None:
    arn = put_secret(secrets, "jobs/db2", database_url)
    conninfo = conninfo_from(Settings(database_secret_arn=arn, secret_max_age_s=300))
    first = conninfo(False)
    secrets.update_secret(  # type: ignore[attr-defined]
        SecretId=arn, SecretString=json.dumps({"host": "rotated.example", "username": "u", "password": "p2"})
    )
    assert conninfo(False) == first  # cached for max_age
    assert "rotated.example" in conninfo(True)  # a failed connect asks for fresh credentials


def test_the_proxy_endpoint_replaces_the_secrets_host(secrets: object, database_url: str) -> None:
    arn = put_secret(secrets, "jobs/db3", database_url)
    conninfo = conninfo_from(Settings(database_secret_arn=arn, database_host="proxy.example"))
    assert conninfo_to_dict(conninfo(False)) | {"password": "-"} == conninfo_to_dict(conninfo(False)) | {
        "host": "proxy.example",
        "sslmode": "require",
        "password": "-",
    }


def test_settings_need_a_database() -> None:
    with pytest.raises(ValueError, match="DATABASE_URL"):
        Settings()
