"""AWS IoT Jobs' data plane (boto3 `iot-jobs-data`, endpoint_url=BASE + "/iot-jobs-data"): the
device's four job operations, in one function, since they are one API with one error format and
one way to authenticate (the provision token, in X-Provision-Token); every other path of it is a
modelled error. The rules are the layer's (aws/data_plane.py over the native device calls)."""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Query

from jobs_core.aws import data_plane
from jobs_core.aws.http import AWS_SECURITY_DEVICE, DATA_PLANE_ERRORS, aws_resolver, job, thing
from jobs_core.aws.shapes import (
    DATA_PLANE_STATUS,
    AwsError,
    ExecutionResponse,
    GetPendingJobExecutionsResponse,
    StartNextPendingJobExecutionRequest,
    UpdateJobExecutionRequest,
)
from jobs_core.native.http import handler_for, provision_token
from jobs_core.store.db import database

app = aws_resolver(DATA_PLANE_STATUS, unauthenticated="CertificateValidationException")
PREFIX = "/iot-jobs-data/things/<thingName>/jobs"
TAGS = ["aws-iot-jobs-data"]
RESPONSES = {200: {"description": "as the iot-jobs-data model has it"}, **DATA_PLANE_ERRORS}


@app.get(PREFIX, summary="GetPendingJobExecutions", security=AWS_SECURITY_DEVICE, tags=TAGS, responses=RESPONSES)
def get_pending(thingName: str) -> GetPendingJobExecutionsResponse:
    return data_plane.get_pending(database(), provision_token(app), thing(thingName))


@app.get(
    f"{PREFIX}/<jobId>", summary="DescribeJobExecution", security=AWS_SECURITY_DEVICE, tags=TAGS, responses=RESPONSES
)
def describe(
    thingName: str,
    jobId: str,
    includeJobDocument: Annotated[bool, Query()] = True,
    executionNumber: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> ExecutionResponse:
    return data_plane.describe(
        database(),
        provision_token(app),
        thing(thingName),
        job(jobId, next_ok=True),
        includeJobDocument,
        executionNumber,
    )


@app.put(
    f"{PREFIX}/<jobId>",
    summary="StartNextPendingJobExecution ($next)",
    security=AWS_SECURITY_DEVICE,
    tags=TAGS,
    responses=RESPONSES,
)
def start_next(
    thingName: str,
    jobId: str,
    request: StartNextPendingJobExecutionRequest | None = None,
) -> ExecutionResponse:
    if job(jobId, next_ok=True) != data_plane.NEXT:
        raise AwsError("InvalidRequestException", f"not supported by this service: PUT {app.current_event.path}")
    body = request or StartNextPendingJobExecutionRequest()
    return data_plane.start_next(database(), provision_token(app), thing(thingName), body)


@app.post(
    f"{PREFIX}/<jobId>", summary="UpdateJobExecution", security=AWS_SECURITY_DEVICE, tags=TAGS, responses=RESPONSES
)
def update(thingName: str, jobId: str, request: UpdateJobExecutionRequest) -> dict[str, Any]:
    return data_plane.update(database(), provision_token(app), thing(thingName), job(jobId), request)


lambda_handler = handler_for(app)
