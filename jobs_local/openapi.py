"""/openapi.json: each function's own schema, generated from its code and merged by Powertools."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler.openapi.merge import OpenAPIMerge
from aws_lambda_powertools.event_handler.openapi.models import APIKey, HTTPBearer, SecurityScheme

from jobs_local import template
from jobs_local.devdb import ROOT

COMMITTED = ROOT / "openapi.json"

# Kept out of the handlers' import path: Powertools' OpenAPI models cost ~60 ms of cold start.
SECURITY_SCHEMES: dict[str, SecurityScheme] = {
    "provisionToken": APIKey.model_validate(
        {"type": "apiKey", "name": "X-Provision-Token", "in": "header", "description": "a device's provision token"}
    ),
    "operatorJwt": HTTPBearer(bearerFormat="JWT", description="checked by the API Gateway JWT authorizer"),
}


def schema() -> dict[str, Any]:
    merge = OpenAPIMerge(
        title="IoT Jobs",
        version="1.0.0",
        description="Jobs for fleets of IoT devices: operators create jobs, devices claim and report them.",
        security_schemes=SECURITY_SCHEMES,
        on_conflict="error",
    )
    for name in dict.fromkeys(route.module for route in template.routes()):  # a function may serve many routes
        module = __import__(name)
        merge.add_schema(module.app.get_openapi_schema(title="IoT Jobs", security_schemes=SECURITY_SCHEMES))
    merged: dict[str, Any] = json.loads(merge.get_openapi_json_schema())
    return merged


def render() -> str:
    return json.dumps(schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":  # regenerate the committed copy
    COMMITTED.write_text(render())
    print(f"wrote {COMMITTED.relative_to(ROOT)}")
