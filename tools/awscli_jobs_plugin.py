"""An AWS CLI (v1) plugin: sends this service's credentials instead of AWS's. A device's provision
token (IOT_JOBS_PROVISION_TOKEN) goes in X-Provision-Token on `aws iot-jobs-data` commands; an
operator's JWT (IOT_JOBS_OPERATOR_TOKEN) as a bearer token on `aws iot` commands. Run the commands
with --no-sign-request; `make awscli` writes .local/aws-config, which loads this plugin:

    AWS_CONFIG_FILE=.local/aws-config IOT_JOBS_PROVISION_TOKEN=... .venv-awscli/bin/aws \\
        iot-jobs-data get-pending-job-executions --thing-name sensor-1 \\
        --endpoint-url http://127.0.0.1:3000/iot-jobs-data --no-sign-request --region us-east-1
"""

from __future__ import annotations

import os
from typing import Any


def awscli_initialize(cli: Any) -> None:
    cli.register("before-sign.iot-jobs-data-plane", _provision_token)
    cli.register("before-sign.iot", _operator_token)


def _provision_token(request: Any, **kwargs: Any) -> None:
    token = os.environ.get("IOT_JOBS_PROVISION_TOKEN")
    if token:
        request.headers["X-Provision-Token"] = token


def _operator_token(request: Any, **kwargs: Any) -> None:
    token = os.environ.get("IOT_JOBS_OPERATOR_TOKEN")
    if token:
        request.headers["Authorization"] = f"Bearer {token}"
