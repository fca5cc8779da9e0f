"""The HTTP side shared by every route handler: the resolver, error mapping, the caller's
identity, and the one way a route's module becomes a Lambda handler (`handler_for`).

Domain errors are plain classes (errors.py); this module is the one place that maps them
to status codes. Every error body is JSON {"message": ...}; a stack trace never leaves.
Nothing below the handlers imports this module.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from http import HTTPStatus
from typing import Any, NamedTuple

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from jobs_core.domain.models import MAX_DOCUMENT_PARAMS_BYTES, TENANT_PATTERN, ErrorBody
from jobs_core.errors import (
    Conflict,
    DatabaseUnavailable,
    Ended,
    Forbidden,
    InvalidRequest,
    JobsError,
    NotFound,
    Refused,
    Unauthorized,
    Unprocessable,
)
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
    Unprocessable: HTTPStatus.UNPROCESSABLE_ENTITY,
    Refused: HTTPStatus.BAD_REQUEST,
    Ended: HTTPStatus.BAD_REQUEST,
}

ERRORS: dict[HTTPStatus, str] = {
    HTTPStatus.BAD_REQUEST: "refused by the state machine or the rules",
    HTTPStatus.UNAUTHORIZED: "missing, unknown or unverified credentials",
    HTTPStatus.FORBIDDEN: "verified credentials without a tenant",
    HTTPStatus.NOT_FOUND: "absent, or not the caller's",
    HTTPStatus.CONFLICT: "a stale execution_number, or a job_id already taken",
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE: "a body over 256 KiB",
    HTTPStatus.UNSUPPORTED_MEDIA_TYPE: "a body that is not application/json",
    HTTPStatus.UNPROCESSABLE_ENTITY: "a malformed request, or a document whose placeholders cannot be filled",
    HTTPStatus.SERVICE_UNAVAILABLE: "the database is unreachable; nothing was changed",
}
_ERROR_SCHEMA = ErrorBody.model_json_schema()
ERROR_RESPONSES: dict[int, Any] = {
    status: {"description": text, "content": {"application/json": {"schema": _ERROR_SCHEMA}}}
    for status, text in ERRORS.items()
}


# A list route's 200: a JSON array, one page; the next page's cursor in X-Next-Cursor.
PAGED: OpenAPIResponse = {
    "description": "one page, as a JSON array",
    "headers": {
        "X-Next-Cursor": {"description": "the next page's cursor, passed back as `cursor`; absent on the last"}
    },
}


def page(items: Sequence[Any], next_cursor: str | None) -> Response[Any]:
    """A page of a list route: the items, and the next page's cursor in the X-Next-Cursor header."""
    headers = {"X-Next-Cursor": next_cursor} if next_cursor else None
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=list(items), headers=headers)


def _error(status: HTTPStatus, message: str, **extra: Any) -> Response[dict[str, Any]]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body={"message": message, **extra})


# The largest valid body, with the worst escaping of a valid one: the document limit counts the
# document's UTF-8 bytes, and JSON may spell each of them in up to 6 (a control character as
# \u0001), so 6 x 32 KiB, plus the rest of the body.
MAX_BODY_BYTES = 6 * MAX_DOCUMENT_PARAMS_BYTES + 64 * 1024


def _is_json(content_type: str) -> bool:
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime == "application/json" or (mime.startswith("application/") and mime.endswith("+json"))


def strict_json(text: str) -> Any:
    """A body as this API takes it: a JSON object, JSON as RFC 8259 and PostgreSQL's jsonb have it
    (no NaN or Infinity, no number that overflows a double, no integer past Python's digit limit).
    Anything else is a JSONDecodeError, which the validation turns into 422."""

    def constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    def number(literal: str) -> float:
        value = float(literal)
        if not math.isfinite(value):
            raise ValueError("a number out of range")
        return value

    try:
        parsed = json.loads(text, parse_constant=constant, parse_float=number)
    except json.JSONDecodeError:
        raise
    except (ValueError, RecursionError) as exc:  # the digit limit, a constant, an overflow, depth
        raise json.JSONDecodeError(str(exc)[:100], "", 0) from None
    if not isinstance(parsed, dict):  # every body of this API is an object
        raise json.JSONDecodeError("a body is a JSON object", "", 0)
    return parsed


class JsonResolver(APIGatewayHttpResolver):
    """Bodies are JSON or nothing, and bounded: another content type is 415 and a body over
    MAX_BODY_BYTES is 413, before anyone parses them (Powertools would otherwise try form and
    multipart parsing on our behalf, and parse a 6 MB body before any limit applies). A JSON
    media type in any spelling (APPLICATION/JSON, application/vnd.api+json) is application/json
    from here on, and a request without a body has no content type to trip over."""

    def resolve(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        body = event.get("body") or ""
        headers = dict(event.get("headers") or {})
        content_type = headers.pop("content-type", "")
        if len(body.encode(errors="surrogatepass")) > MAX_BODY_BYTES:
            return _refusal(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"a body is at most {MAX_BODY_BYTES} bytes")
        if body and content_type and not _is_json(content_type):
            return _refusal(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send the body as application/json")
        if body:
            headers["content-type"] = content_types.APPLICATION_JSON
        resolved: dict[str, Any] = super().resolve({**event, "headers": headers}, context)
        return resolved


MAX_DETAILS = 10
_UNSAFE = re.compile(r"[^\x20-\x7e]")


def _excerpt(value: Any, limit: int = 64) -> str | int:
    """A short, printable excerpt of a name or message a client sent (a list index stays a number)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = _UNSAFE.sub("?", str(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _refusal(status: HTTPStatus, message: str) -> dict[str, Any]:
    """An API Gateway response for a request refused before routing."""
    return {
        "statusCode": int(status),
        "headers": {"Content-Type": content_types.APPLICATION_JSON},
        "body": json.dumps({"message": message}),
        "isBase64Encoded": False,
    }


def json_resolver() -> JsonResolver:
    """A resolver whose bodies are strict JSON, validated against the route's models; its errors
    are the caller's to map (resolver() maps them for the native API)."""
    return JsonResolver(
        enable_validation=True, response_validation_error_http_code=500, json_body_deserializer=strict_json
    )


def resolver() -> APIGatewayHttpResolver:
    """A resolver for one function, with validation and every error mapped."""
    app = json_resolver()

    @app.exception_handler(JobsError)
    def domain_error(exc: JobsError) -> Response[dict[str, Any]]:
        # the status of the nearest class the table names (InUse is a Conflict, LimitExceeded an InvalidRequest)
        status = next((STATUS_OF[kind] for kind in type(exc).__mro__ if kind in STATUS_OF), HTTPStatus.BAD_REQUEST)
        return _error(status, exc.message)

    @app.exception_handler(RequestValidationError)
    def invalid_request(exc: RequestValidationError) -> Response[dict[str, Any]]:
        # Only where and what, in short: never the input, nor more than an excerpt of a name.
        details = [
            {
                "loc": [_excerpt(part) for part in err.get("loc", ())],
                "msg": _excerpt(err.get("msg", ""), 200),
                "type": _excerpt(err.get("type", "")),
            }
            for err in exc.errors()[:MAX_DETAILS]
        ]
        return _error(HTTPStatus.UNPROCESSABLE_ENTITY, "invalid request", details=details)

    @app.exception_handler(RequestUnsupportedContentType)
    def unsupported_content(exc: RequestUnsupportedContentType) -> Response[dict[str, Any]]:
        return _error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send the body as application/json")

    @app.exception_handler(UnicodeDecodeError)
    def undecodable_body(exc: UnicodeDecodeError) -> Response[dict[str, Any]]:
        # Powertools decodes the body before validating it; bytes that are not UTF-8 fail there.
        return _error(
            HTTPStatus.UNPROCESSABLE_ENTITY, "invalid request", details=[{"loc": ["body"], "msg": "not UTF-8"}]
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


TENANT = re.compile(TENANT_PATTERN)
MAX_SUB_LENGTH = 256


def operator(app: APIGatewayHttpResolver) -> Operator:
    """The tenant and user of the claims the JWT authorizer verified. None: 401. No tenant claim,
    or one that is not a tenant id (models.TENANT_PATTERN), or a sub that is not printable text: 403.
    (`sam local start-api` runs no JWT authorizer, so there every operator call is refused.)"""
    context = app.current_event.raw_event.get("requestContext") or {}
    claims = ((context.get("authorizer") or {}).get("jwt") or {}).get("claims")
    if not claims or not isinstance(claims, dict):
        raise Unauthorized("missing or unverified credentials")
    name = settings().tenant_claim
    tenant_id, sub = claims.get(name), claims.get("sub")
    if not tenant_id:
        raise Forbidden(f"the token carries no {name} claim")
    if not isinstance(tenant_id, str) or not TENANT.fullmatch(tenant_id):
        raise Forbidden(f"the token's {name} claim is not a tenant id")
    if sub is not None and not _printable(sub):
        raise Forbidden("the token's sub claim is not printable text")
    logger.append_keys(tenant_id=tenant_id)  # cleared at the next invocation (clear_state)
    return Operator(tenant_id, sub)


def _printable(value: Any) -> bool:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_SUB_LENGTH or not value.isprintable():
        return False
    try:
        value.encode()
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True
