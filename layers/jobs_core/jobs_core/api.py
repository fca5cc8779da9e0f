"""The HTTP side shared by every route handler: the resolver, error mapping, the caller's
identity, and the one way a route's module becomes a Lambda handler (`handler_for`).

Domain errors are plain classes (errors.py); this module is the one place that maps them
to status codes. Every error body is JSON {"message": ...}; a stack trace never leaves.
Nothing below the handlers imports this module.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any, NamedTuple

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from jobs_core.errors import (
    Conflict,
    DatabaseUnavailable,
    Forbidden,
    InvalidRequest,
    JobsError,
    NotFound,
    Unauthorized,
)
from jobs_core.models import ErrorBody
from jobs_core.observability import logger, metrics, traced
from jobs_core.settings import settings

LambdaHandler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]

# The two ways in, as the OpenAPI document names them (the schemes: jobs_local/openapi.py).
DEVICE_SECURITY: list[dict[str, list[str]]] = [{"provisionToken": []}]
OPERATOR_SECURITY: list[dict[str, list[str]]] = [{"operatorJwt": []}]

STATUS_OF: dict[type[JobsError], HTTPStatus] = {
    Unauthorized: HTTPStatus.UNAUTHORIZED,
    Forbidden: HTTPStatus.FORBIDDEN,
    NotFound: HTTPStatus.NOT_FOUND,
    Conflict: HTTPStatus.CONFLICT,
    InvalidRequest: HTTPStatus.BAD_REQUEST,
}

ERRORS: dict[HTTPStatus, str] = {
    HTTPStatus.BAD_REQUEST: "refused by the state machine or the rules",
    HTTPStatus.UNAUTHORIZED: "missing, unknown or unverified credentials",
    HTTPStatus.FORBIDDEN: "verified credentials without a tenant",
    HTTPStatus.NOT_FOUND: "absent, or not the caller's",
    HTTPStatus.CONFLICT: "a stale execution_number, or a job_id already taken",
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE: "a body over 64 KiB",
    HTTPStatus.UNSUPPORTED_MEDIA_TYPE: "a body that is not application/json",
    HTTPStatus.UNPROCESSABLE_ENTITY: "a malformed request",
    HTTPStatus.SERVICE_UNAVAILABLE: "the database is unreachable; nothing was changed",
}
_ERROR_SCHEMA = ErrorBody.model_json_schema()
ERROR_RESPONSES: dict[int, Any] = {
    status: {"description": text, "content": {"application/json": {"schema": _ERROR_SCHEMA}}}
    for status, text in ERRORS.items()
}


def _error(status: HTTPStatus, message: str, **extra: Any) -> Response[dict[str, Any]]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body={"message": message, **extra})


# The largest valid body: 32 KiB of document_params plus the rest, with room to spare.
MAX_BODY_BYTES = 64 * 1024


def _is_json(content_type: str) -> bool:
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime == "application/json" or (mime.startswith("application/") and mime.endswith("+json"))


class JsonResolver(APIGatewayHttpResolver):
    """Bodies are JSON or nothing, and small: another content type is 415 and a body over
    MAX_BODY_BYTES is 413, before anyone parses them (Powertools would otherwise try form and
    multipart parsing on our behalf, and parse a 6 MB body before any limit applies)."""

    def resolve(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        body = event.get("body") or ""
        content_type = (event.get("headers") or {}).get("content-type", "")
        if len(body) > MAX_BODY_BYTES:
            return _refusal(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"a body is at most {MAX_BODY_BYTES} bytes")
        if body and content_type and not _is_json(content_type):
            return _refusal(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send the body as application/json")
        resolved: dict[str, Any] = super().resolve(event, context)
        return resolved


def _refusal(status: HTTPStatus, message: str) -> dict[str, Any]:
    """An API Gateway response for a request refused before routing."""
    return {
        "statusCode": int(status),
        "headers": {"Content-Type": content_types.APPLICATION_JSON},
        "body": json.dumps({"message": message}),
        "isBase64Encoded": False,
    }


def resolver() -> APIGatewayHttpResolver:
    """A resolver for one function, with validation and every error mapped."""
    app = JsonResolver(enable_validation=True, response_validation_error_http_code=500)

    @app.exception_handler(JobsError)
    def domain_error(exc: JobsError) -> Response[dict[str, Any]]:
        return _error(STATUS_OF.get(type(exc), HTTPStatus.BAD_REQUEST), exc.message)

    @app.exception_handler(RequestValidationError)
    def invalid_request(exc: RequestValidationError) -> Response[dict[str, Any]]:
        # Only where and what: never echo the input back.
        details = [
            {"loc": list(err.get("loc", ())), "msg": str(err.get("msg", "")), "type": err.get("type")}
            for err in exc.errors()
        ]
        return _error(HTTPStatus.UNPROCESSABLE_ENTITY, "invalid request", details=details)

    @app.exception_handler(UnicodeDecodeError)
    def undecodable_body(exc: UnicodeDecodeError) -> Response[dict[str, Any]]:
        # Powertools decodes the body before validating it; bytes that are not UTF-8 fail there.
        return _error(
            HTTPStatus.UNPROCESSABLE_ENTITY, "invalid request", details=[{"loc": ["body"], "msg": "not UTF-8"}]
        )

    @app.exception_handler(RecursionError)
    def too_deep(exc: RecursionError) -> Response[dict[str, Any]]:
        # Parsing a body nested thousands of levels deep; bounded, and refused.
        return _error(
            HTTPStatus.UNPROCESSABLE_ENTITY, "invalid request", details=[{"loc": ["body"], "msg": "too deep"}]
        )

    @app.exception_handler(DatabaseUnavailable)
    def database_unavailable(exc: DatabaseUnavailable) -> Response[dict[str, Any]]:
        logger.warning("database unavailable", extra={"reason": str(exc), "cause": type(exc.__cause__).__name__})
        return _error(HTTPStatus.SERVICE_UNAVAILABLE, "service unavailable, retry later")

    @app.exception_handler(Exception)
    def unexpected(exc: Exception) -> Response[dict[str, Any]]:
        logger.exception("unhandled error")
        return _error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")

    return app


def handler_for(app: APIGatewayHttpResolver) -> LambdaHandler:
    """A route module's `lambda_handler`: resolve the event with the route's app, with the log
    context set per invocation, the metrics the layer recorded flushed after it, and traced where
    tracing is on (observability.tracer)."""

    def handle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        try:
            response: dict[str, Any] = app.resolve(event, context)
            return response
        finally:
            if metrics.metric_set:  # only calls that changed something record metrics
                metrics.flush_metrics()

    logged = logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
    return traced(logged(handle))


class Operator(NamedTuple):
    """Who calls the operator API, from the claims the JWT authorizer verified."""

    tenant_id: str
    user: str | None


def provision_token(app: APIGatewayHttpResolver) -> str | None:
    """The device's token; API Gateway HTTP APIs lower-case header names."""
    headers = app.current_event.headers or {}
    return headers.get("x-provision-token")


def operator(app: APIGatewayHttpResolver) -> Operator:
    """The tenant and user of the claims the JWT authorizer verified. None: 401; no tenant: 403.
    (`sam local start-api` runs no JWT authorizer, so there every operator call is refused.)"""
    context = app.current_event.raw_event.get("requestContext") or {}
    claims = ((context.get("authorizer") or {}).get("jwt") or {}).get("claims")
    if not claims:
        raise Unauthorized("missing or unverified credentials")
    tenant_id = claims.get(settings().tenant_claim)
    if not tenant_id:
        raise Forbidden(f"the token carries no {settings().tenant_claim} claim")
    logger.append_keys(tenant_id=str(tenant_id))  # cleared at the next invocation (clear_state)
    return Operator(str(tenant_id), claims.get("sub"))
