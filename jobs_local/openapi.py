"""/openapi.json: each function's own schema, generated from its code and merged by Powertools."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler.openapi.merge import OpenAPIMerge

from jobs_core.api import SECURITY_SCHEMES
from jobs_local import template
from jobs_local.devdb import ROOT

COMMITTED = ROOT / "openapi.json"


def schema() -> dict[str, Any]:
    merge = OpenAPIMerge(
        title="IoT Jobs",
        version="1.0.0",
        description="Jobs for fleets of IoT devices: operators create jobs, devices claim and report them.",
        security_schemes=SECURITY_SCHEMES,
        on_conflict="error",
    )
    for route in template.routes():
        module = __import__(route.module)
        merge.add_schema(module.app.get_openapi_schema())
    merged: dict[str, Any] = json.loads(merge.get_openapi_json_schema())
    return merged


def render() -> str:
    return json.dumps(schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":  # regenerate the committed copy
    COMMITTED.write_text(render())
    print(f"wrote {COMMITTED.relative_to(ROOT)}")
