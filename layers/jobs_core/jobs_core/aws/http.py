"""The HTTP side of AWS IoT Jobs' API: a resolver per API whose every error is what botocore parses
into the modelled exception class (status of the API's model, `x-amzn-ErrorType` header, body
{"message", "__type"}), never a 422 or an HTML page; an operation this service does not speak
is InvalidRequestException. The operator's identity is the native API's (api.operator).
"""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)

from jobs_core.aws.shapes import CONTROL_PLANE_STATUS, DATA_PLANE_STATUS, AwsError
from jobs_core.domain.models import DEVICE_ID_PATTERN, JOB_ID_PATTERN
from jobs_core.errors import DatabaseBusy, DatabaseUnavailable, Forbidden, JobsError, NotFound, Unauthorized
from jobs_core.native.http import json_resolver
from jobs_core.observability import logger

AWS_SECURITY_DEVICE: list[dict[str, list[str]]] = [{"provisionToken": []}]
AWS_SECURITY_OPERATOR: list[dict[str, list[str]]] = [{"operatorJwt": []}]

# An error as botocore parses it; the API's authorizer answers a bad JWT with {"message"} alone.
AWS_ERROR_SCHEMA = {
    "type": "object",
    "properties": {"message": {"type": "string"}, "__type": {"type": "string"}},
    "required": ["message"],
}


def _documented(statuses: dict[str, int]) -> dict[int, Any]:
    """The error responses of an API, per status, with the codes each status carries."""
    codes: dict[int, list[str]] = {}
    for code, status in statuses.items():
        codes.setdefault(status, []).append(code)
    return {
        status: {"description": ", ".join(names), "content": {"application/json": {"schema": AWS_ERROR_SCHEMA}}}
        for status, names in sorted(codes.items())
    }


DATA_PLANE_ERRORS = _documented(DATA_PLANE_STATUS)
CONTROL_PLANE_ERRORS = _documented(CONTROL_PLANE_STATUS)


def aws_error(statuses: dict[str, int], code: str, message: str, **members: str) -> Response[dict[str, Any]]:
    return Response(
        status_code=statuses[code],
        content_type=content_types.APPLICATION_JSON,
        body={"message": message, "__type": code, **members},
        headers={"x-amzn-ErrorType": code, "x-amzn-RequestId": str(uuid.uuid4())},
    )


def aws_resolver(statuses: dict[str, int], unauthenticated: str) -> APIGatewayHttpResolver:
    """A resolver for one AWS API (its codes' statuses; the code of a caller it cannot identify)."""
    app = json_resolver()

    def error(code: str, message: str, **members: str) -> Response[dict[str, Any]]:
        return aws_error(statuses, code, message, **members)

    @app.exception_handler(AwsError)
    def modelled(exc: AwsError) -> Response[dict[str, Any]]:
        return error(exc.code, exc.message, **exc.members)

    @app.exception_handler(JobsError)
    def domain_error(exc: JobsError) -> Response[dict[str, Any]]:
        if isinstance(exc, Unauthorized | Forbidden):
            return error(unauthenticated, exc.message)
        if isinstance(exc, NotFound):
            return error("ResourceNotFoundException", exc.message)
        return error("InvalidRequestException", exc.message)

    @app.exception_handler(RequestValidationError)
    def invalid_request(exc: RequestValidationError) -> Response[dict[str, Any]]:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path"))
        return error("InvalidRequestException", f"{where or 'request'}: {first.get('msg', 'invalid')}"[:200])

    @app.exception_handler(RequestUnsupportedContentType)
    def unsupported_content(exc: RequestUnsupportedContentType) -> Response[dict[str, Any]]:
        return error("InvalidRequestException", "send the body as application/json")

    @app.exception_handler(UnicodeDecodeError)
    def undecodable_body(exc: UnicodeDecodeError) -> Response[dict[str, Any]]:
        return error("InvalidRequestException", "the body is not UTF-8")

    @app.exception_handler(DatabaseUnavailable)
    def database_unavailable(exc: DatabaseUnavailable) -> Response[dict[str, Any]]:
        logger.warning("database unavailable", extra={"reason": str(exc), "cause": type(exc.__cause__).__name__})
        if isinstance(exc, DatabaseBusy):
            return error("ThrottlingException", "the database is busy: retry")
        return error("ServiceUnavailableException", "service unavailable, retry later")

    @app.exception_handler(Exception)
    def unexpected(exc: Exception) -> Response[dict[str, Any]]:
        logger.exception("unhandled error")
        return Response(
            status_code=500,
            content_type=content_types.APPLICATION_JSON,
            body={"message": "internal error", "__type": "InternalFailureException"},
            headers={"x-amzn-ErrorType": "InternalFailureException"},
        )

    @app.not_found
    def unsupported(exc: Exception) -> Response[dict[str, Any]]:
        event = app.current_event
        return error(
            "InvalidRequestException", f"not supported by this service: {event.http_method} {event.path}"[:200]
        )

    return app


THING = re.compile(DEVICE_ID_PATTERN)
JOB = re.compile(JOB_ID_PATTERN)


def thing(value: str) -> str:
    """A thingName path parameter as the client meant it (botocore percent-encodes ':'), checked
    against AWS's rule for thing names."""
    name = unquote(value)
    if not THING.fullmatch(name):
        raise AwsError("InvalidRequestException", "thingName: 1-128 of [a-zA-Z0-9:_-]")
    return name


def job(value: str, *, next_ok: bool = False) -> str:
    """A jobId path parameter (botocore percent-encodes "$next"), checked against AWS's rule."""
    job_id = unquote(value)
    if not (JOB.fullmatch(job_id) or (next_ok and job_id == "$next")):
        raise AwsError("InvalidRequestException", "jobId: 1-64 of [a-zA-Z0-9_-]" + (' or "$next"' if next_ok else ""))
    return job_id
