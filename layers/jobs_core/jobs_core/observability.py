"""Logger, Metrics and Tracer: one of each per container, configured by the POWERTOOLS_*
variables of the template's Globals. Every module may import this one; it imports nothing of ours."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar, cast

from aws_lambda_powertools import Logger, Metrics

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

Handler = TypeVar("Handler", bound=Callable[..., Any])

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "iot-jobs"))
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "IotJobs"))


def tracing_enabled() -> bool:
    """In Lambda, unless POWERTOOLS_TRACE_DISABLED says otherwise (the template turns it off for the
    device routes: see tracer())."""
    disabled = os.environ.get("POWERTOOLS_TRACE_DISABLED", "false").lower() in ("1", "true", "yes", "on")
    in_lambda = bool(os.environ.get("LAMBDA_TASK_ROOT")) and not os.environ.get("AWS_SAM_LOCAL")
    return in_lambda and not disabled


@cache
def tracer() -> Tracer | None:
    """The X-Ray tracer, created on first use, or None where tracing is off. Creating one imports
    the X-Ray SDK, about 300 ms of cold start on the bench machine (more than the rest of a device
    handler's start), so the device routes rely on Lambda's own active tracing (a segment per
    invocation) and only the operator routes and the sweep add our subsegments."""
    if not tracing_enabled():
        return None
    from aws_lambda_powertools import Tracer

    return Tracer(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "iot-jobs"))


def traced(handler: Handler) -> Handler:
    """A Lambda handler with an X-Ray subsegment around it where tracing is on; as is elsewhere."""
    found = tracer()
    if found is None:
        return handler
    return cast(Handler, found.capture_lambda_handler(handler, capture_response=False))
