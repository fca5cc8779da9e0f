"""Configuration, validated once at cold start so a bad deployment fails loudly."""

from __future__ import annotations

import os
from functools import lru_cache

from pydantic import BaseModel, Field, model_validator


class Settings(BaseModel):
    database_url: str | None = None  # local: a libpq URL
    database_secret_arn: str | None = None  # cloud: a Secrets Manager secret (RDS JSON shape)
    database_host: str | None = None  # cloud: connect here (the RDS Proxy) instead of the secret's host
    database_sslmode: str = "require"  # cloud: RDS Proxy requires TLS
    runtime_role: str = "jobs_runtime"
    sweeper_role: str = "jobs_sweeper"
    connect_timeout_s: int = Field(default=5, ge=1, le=60)
    statement_timeout_ms: int = Field(default=5000, ge=100, le=900_000)
    secret_max_age_s: int = Field(default=300, ge=0)
    tenant_claim: str = "tenant_id"
    sweep_batch_size: int = Field(default=10_000, ge=1, le=100_000)
    sweep_max_batches: int = Field(default=50, ge=1)
    aws_region: str = "us-east-1"  # in the ARNs of the AWS IoT Jobs API
    aws_account_id: str = "000000000000"
    # Push (domain/notifications.py): topics {push_topic_prefix}/{tenant}/things/{device}/jobs/...
    push_topic_prefix: str = Field(default="iotjobs", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    mqtt_url: str | None = None  # publish to this MQTT broker (mqtt://host:port) ...
    mqtt_username: str | None = None
    mqtt_password: str | None = None
    iot_data_endpoint: str | None = None  # ... or through AWS IoT Core's iot-data endpoint
    push_function_name: str | None = None  # cloud: the drain, invoked (async) after a commit that made work due
    poll_hint_s: int = Field(default=300, ge=5, le=86_400)  # the next-poll hint's mean, jittered +-20%
    # Presigned URLs (domain/presign.py) point here when set (path style), else at S3 itself
    s3_endpoint_url: str | None = Field(default=None, pattern=r"^https?://[^/?#]+/?$")
    # ... and name objects under the tenant's own prefix only (BUCKET/TENANT_ID/...): tenants share the buckets
    s3_tenant_prefix: bool = False

    @model_validator(mode="after")
    def _one_database(self) -> Settings:
        if not self.database_url and not self.database_secret_arn:
            raise ValueError("set DATABASE_URL (local) or DATABASE_SECRET_ARN (cloud)")
        return self


@lru_cache(maxsize=1)
def settings() -> Settings:
    env = {
        "database_url": os.environ.get("DATABASE_URL") or None,
        "database_secret_arn": os.environ.get("DATABASE_SECRET_ARN") or None,
        "database_host": os.environ.get("DATABASE_HOST") or None,
        "database_sslmode": os.environ.get("DATABASE_SSLMODE") or None,
        "runtime_role": os.environ.get("DB_RUNTIME_ROLE"),
        "sweeper_role": os.environ.get("DB_SWEEPER_ROLE"),
        "connect_timeout_s": os.environ.get("DB_CONNECT_TIMEOUT_S"),
        "statement_timeout_ms": os.environ.get("DB_STATEMENT_TIMEOUT_MS"),
        "tenant_claim": os.environ.get("TENANT_CLAIM"),
        "sweep_batch_size": os.environ.get("SWEEP_BATCH_SIZE"),
        "sweep_max_batches": os.environ.get("SWEEP_MAX_BATCHES"),
        "aws_region": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
        "aws_account_id": os.environ.get("AWS_ACCOUNT_ID"),
        "push_topic_prefix": os.environ.get("PUSH_TOPIC_PREFIX") or None,
        "mqtt_url": os.environ.get("MQTT_URL") or None,
        "mqtt_username": os.environ.get("MQTT_USERNAME") or None,
        "mqtt_password": os.environ.get("MQTT_PASSWORD") or None,
        "iot_data_endpoint": os.environ.get("IOT_DATA_ENDPOINT") or None,
        "push_function_name": os.environ.get("PUSH_FUNCTION_NAME") or None,
        "poll_hint_s": os.environ.get("POLL_HINT_S"),
        "s3_endpoint_url": os.environ.get("S3_ENDPOINT_URL") or None,
        "s3_tenant_prefix": os.environ.get("S3_TENANT_PREFIX") or None,
    }
    return Settings.model_validate({k: v for k, v in env.items() if v is not None})
