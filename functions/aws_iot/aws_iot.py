"""AWS IoT's control plane (boto3 `iot`, endpoint_url=BASE + "/iot"), the jobs operations, the job
templates' and the registry's (things, thing groups), in one function: one API, one error format,
the operator's JWT (checked by the API's authorizer) for all of them; every other operation of the
model is a modelled error. The rules are the layer's (aws/jobs.py, aws/job_executions.py,
aws/job_templates.py and aws/things.py over the native operator logic)."""

from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Query

from jobs_core.aws import job_executions, job_templates, things
from jobs_core.aws import jobs as aws_jobs
from jobs_core.aws.http import AWS_SECURITY_OPERATOR, CONTROL_PLANE_ERRORS, aws_resolver, job, thing
from jobs_core.aws.shapes import (
    CONTROL_PLANE_STATUS,
    AssociateTargetsWithJobRequest,
    CancelJobExecutionRequest,
    CancelJobRequest,
    CreateJobRequest,
    DescribeJobExecutionResponse,
    DescribeJobResponse,
    GetJobDocumentResponse,
    JobReference,
    ListJobExecutionsForJobResponse,
    ListJobExecutionsForThingResponse,
    ListJobsResponse,
)
from jobs_core.aws.template_shapes import (
    CreateJobTemplateRequest,
    CreateJobTemplateResponse,
    DescribeJobTemplateResponse,
    ListJobTemplatesResponse,
    template_id,
)
from jobs_core.aws.thing_shapes import (
    ATTRIBUTE_NAME_PATTERN,
    ATTRIBUTE_VALUE_PATTERN,
    CreateThingGroupRequest,
    CreateThingGroupResponse,
    CreateThingRequest,
    CreateThingResponse,
    DescribeThingGroupResponse,
    DescribeThingResponse,
    ListThingGroupsResponse,
    ListThingsInThingGroupResponse,
    ListThingsResponse,
    ThingGroupMembership,
    UpdateThingRequest,
)
from jobs_core.domain.models import DEVICE_ID_PATTERN, JOB_ID_PATTERN
from jobs_core.native.http import handler_for, operator
from jobs_core.store.db import database

app = aws_resolver(CONTROL_PLANE_STATUS, unauthenticated="UnauthorizedException")
TAGS = ["aws-iot"]
SECURITY = AWS_SECURITY_OPERATOR
RESPONSES = {200: {"description": "as the iot model has it"}, **CONTROL_PLANE_ERRORS}
MaxResults = Annotated[int | None, Query(ge=1, le=aws_jobs.MAX_RESULTS)]
Token = Annotated[str | None, Query(max_length=1024)]
JobStatusName = Literal["IN_PROGRESS", "CANCELED", "COMPLETED", "DELETION_IN_PROGRESS", "SCHEDULED"]
ExecutionStatusName = Literal[
    "QUEUED", "IN_PROGRESS", "SUCCEEDED", "FAILED", "TIMED_OUT", "REJECTED", "REMOVED", "CANCELED"
]


def _empty() -> Response[dict[str, str]]:
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body={})


@app.put("/iot/jobs/<jobId>", summary="CreateJob", security=SECURITY, tags=TAGS, responses=RESPONSES)
def create_job(jobId: str, request: CreateJobRequest) -> JobReference:
    who = operator(app)
    return aws_jobs.create_job(database(), who.tenant_id, who.user, job(jobId), request)


@app.get("/iot/jobs/<jobId>", summary="DescribeJob", security=SECURITY, tags=TAGS, responses=RESPONSES)
def describe_job(jobId: str) -> DescribeJobResponse:
    return aws_jobs.describe_job(database(), operator(app).tenant_id, job(jobId))


@app.get("/iot/jobs", summary="ListJobs", security=SECURITY, tags=TAGS, responses=RESPONSES)
def list_jobs(
    status: Annotated[JobStatusName | None, Query()] = None,
    thingGroupName: Annotated[str | None, Query(pattern=DEVICE_ID_PATTERN)] = None,
    maxResults: MaxResults = None,
    nextToken: Token = None,
) -> ListJobsResponse:
    return aws_jobs.list_jobs(database(), operator(app).tenant_id, status, thingGroupName, maxResults, nextToken)


@app.post(
    "/iot/jobs/<jobId>/targets", summary="AssociateTargetsWithJob", security=SECURITY, tags=TAGS, responses=RESPONSES
)
def associate_targets(jobId: str, request: AssociateTargetsWithJobRequest) -> JobReference:
    return aws_jobs.associate_targets(database(), operator(app).tenant_id, job(jobId), request)


@app.put("/iot/jobs/<jobId>/cancel", summary="CancelJob", security=SECURITY, tags=TAGS, responses=RESPONSES)
def cancel_job(
    jobId: str,
    request: CancelJobRequest | None = None,
    force: Annotated[bool, Query()] = False,
) -> JobReference:
    return aws_jobs.cancel_job(database(), operator(app).tenant_id, job(jobId), force, request or CancelJobRequest())


@app.delete("/iot/jobs/<jobId>", summary="DeleteJob", security=SECURITY, tags=TAGS, responses=RESPONSES)
def delete_job(jobId: str, force: Annotated[bool, Query()] = False) -> Response[dict[str, str]]:
    aws_jobs.delete_job(database(), operator(app).tenant_id, job(jobId), force)
    return _empty()


@app.put(
    "/iot/things/<thingName>/jobs/<jobId>/cancel",
    summary="CancelJobExecution",
    security=SECURITY,
    tags=TAGS,
    responses=RESPONSES,
)
def cancel_execution(
    thingName: str,
    jobId: str,
    request: CancelJobExecutionRequest | None = None,
    force: Annotated[bool, Query()] = False,
) -> Response[dict[str, str]]:
    body = request or CancelJobExecutionRequest()
    job_executions.cancel_execution(database(), operator(app).tenant_id, job(jobId), thing(thingName), force, body)
    return _empty()


@app.get(
    "/iot/things/<thingName>/jobs/<jobId>",
    summary="DescribeJobExecution",
    security=SECURITY,
    tags=TAGS,
    responses=RESPONSES,
)
def describe_execution(
    thingName: str,
    jobId: str,
    executionNumber: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> DescribeJobExecutionResponse:
    tenant = operator(app).tenant_id
    return job_executions.describe_execution(database(), tenant, job(jobId), thing(thingName), executionNumber)


@app.get(
    "/iot/jobs/<jobId>/things", summary="ListJobExecutionsForJob", security=SECURITY, tags=TAGS, responses=RESPONSES
)
def executions_for_job(
    jobId: str,
    status: Annotated[ExecutionStatusName | None, Query()] = None,
    maxResults: MaxResults = None,
    nextToken: Token = None,
) -> ListJobExecutionsForJobResponse:
    tenant = operator(app).tenant_id
    return job_executions.list_executions_for_job(database(), tenant, job(jobId), status, maxResults, nextToken)


@app.get(
    "/iot/things/<thingName>/jobs",
    summary="ListJobExecutionsForThing",
    security=SECURITY,
    tags=TAGS,
    responses=RESPONSES,
)
def executions_for_thing(
    thingName: str,
    status: Annotated[ExecutionStatusName | None, Query()] = None,
    jobId: Annotated[str | None, Query(pattern=JOB_ID_PATTERN)] = None,
    maxResults: MaxResults = None,
    nextToken: Token = None,
) -> ListJobExecutionsForThingResponse:
    tenant = operator(app).tenant_id
    return job_executions.list_executions_for_thing(
        database(), tenant, thing(thingName), status, jobId, maxResults, nextToken
    )


@app.get("/iot/jobs/<jobId>/job-document", summary="GetJobDocument", security=SECURITY, tags=TAGS, responses=RESPONSES)
def get_job_document(jobId: str) -> GetJobDocumentResponse:
    return aws_jobs.get_job_document(database(), operator(app).tenant_id, job(jobId))


# Job templates (aws/job_templates.py).
@app.put(
    "/iot/job-templates/<jobTemplateId>", summary="CreateJobTemplate", security=SECURITY, tags=TAGS, responses=RESPONSES
)
def create_job_template(jobTemplateId: str, request: CreateJobTemplateRequest) -> CreateJobTemplateResponse:
    tenant = operator(app).tenant_id
    return job_templates.create_job_template(database(), tenant, template_id(jobTemplateId), request)


@app.get(
    "/iot/job-templates/<jobTemplateId>",
    summary="DescribeJobTemplate",
    security=SECURITY,
    tags=TAGS,
    responses=RESPONSES,
)
def describe_job_template(jobTemplateId: str) -> DescribeJobTemplateResponse:
    return job_templates.describe_job_template(database(), operator(app).tenant_id, template_id(jobTemplateId))


@app.get("/iot/job-templates", summary="ListJobTemplates", security=SECURITY, tags=TAGS, responses=RESPONSES)
def list_job_templates(maxResults: MaxResults = None, nextToken: Token = None) -> ListJobTemplatesResponse:
    return job_templates.list_job_templates(database(), operator(app).tenant_id, maxResults, nextToken)


@app.delete(
    "/iot/job-templates/<jobTemplateId>", summary="DeleteJobTemplate", security=SECURITY, tags=TAGS, responses=RESPONSES
)
def delete_job_template(jobTemplateId: str) -> Response[dict[str, str]]:
    job_templates.delete_job_template(database(), operator(app).tenant_id, template_id(jobTemplateId))
    return _empty()


# The registry: things and thing groups (aws/things.py).
ExpectedVersion = Annotated[int | None, Query(ge=0, le=2**63 - 1)]
Flag = Annotated[bool, Query()]
Name = Annotated[str | None, Query(max_length=128)]


def _route(method: str, path: str, summary: str) -> Any:
    return app.route(path, method, summary=summary, security=SECURITY, tags=TAGS, responses=RESPONSES)


@_route("POST", "/iot/things/<thingName>", "CreateThing")
def create_thing(thingName: str, request: CreateThingRequest | None = None) -> CreateThingResponse:
    tenant = operator(app).tenant_id
    return things.create_thing(database(), tenant, thing(thingName), request or CreateThingRequest())


@_route("GET", "/iot/things/<thingName>", "DescribeThing")
def describe_thing(thingName: str) -> DescribeThingResponse:
    return things.describe_thing(database(), operator(app).tenant_id, thing(thingName))


@_route("GET", "/iot/things", "ListThings")
def list_things(
    attributeName: Annotated[str | None, Query(max_length=128, pattern=ATTRIBUTE_NAME_PATTERN)] = None,
    attributeValue: Annotated[str | None, Query(max_length=800, pattern=ATTRIBUTE_VALUE_PATTERN)] = None,
    thingTypeName: Name = None,
    usePrefixAttributeValue: Flag = False,
    maxResults: MaxResults = None,
    nextToken: Token = None,
) -> ListThingsResponse:
    return things.list_things(
        database(),
        operator(app).tenant_id,
        name=attributeName,
        value=attributeValue,
        thing_type=thingTypeName,
        use_prefix=usePrefixAttributeValue,
        max_results=maxResults,
        next_token=nextToken,
    )


@_route("PATCH", "/iot/things/<thingName>", "UpdateThing")
def update_thing(thingName: str, request: UpdateThingRequest | None = None) -> Response[dict[str, str]]:
    tenant = operator(app).tenant_id
    things.update_thing(database(), tenant, thing(thingName), request or UpdateThingRequest())
    return _empty()


@_route("DELETE", "/iot/things/<thingName>", "DeleteThing")
def delete_thing(thingName: str, expectedVersion: ExpectedVersion = None) -> Response[dict[str, str]]:
    things.delete_thing(database(), operator(app).tenant_id, thing(thingName), expectedVersion)
    return _empty()


@_route("POST", "/iot/thing-groups/<thingGroupName>", "CreateThingGroup")
def create_thing_group(thingGroupName: str, request: CreateThingGroupRequest | None = None) -> CreateThingGroupResponse:
    body = request or CreateThingGroupRequest()
    return things.create_thing_group(database(), operator(app).tenant_id, things.thing_group(thingGroupName), body)


@_route("GET", "/iot/thing-groups/<thingGroupName>", "DescribeThingGroup")
def describe_thing_group(thingGroupName: str) -> DescribeThingGroupResponse:
    return things.describe_thing_group(database(), operator(app).tenant_id, things.thing_group(thingGroupName))


@_route("GET", "/iot/thing-groups", "ListThingGroups")
def list_thing_groups(
    namePrefixFilter: Annotated[str | None, Query(pattern=DEVICE_ID_PATTERN)] = None,
    parentGroup: Name = None,
    recursive: Flag = False,
    maxResults: MaxResults = None,
    nextToken: Token = None,
) -> ListThingGroupsResponse:
    tenant = operator(app).tenant_id
    return things.list_thing_groups(database(), tenant, namePrefixFilter, parentGroup, maxResults, nextToken)


@_route("DELETE", "/iot/thing-groups/<thingGroupName>", "DeleteThingGroup")
def delete_thing_group(thingGroupName: str, expectedVersion: ExpectedVersion = None) -> Response[dict[str, str]]:
    tenant, group = operator(app).tenant_id, things.thing_group(thingGroupName)
    things.delete_thing_group(database(), tenant, group, expectedVersion)
    return _empty()


@_route("PUT", "/iot/thing-groups/addThingToThingGroup", "AddThingToThingGroup")
def add_thing_to_thing_group(request: ThingGroupMembership) -> Response[dict[str, str]]:
    things.add_thing_to_thing_group(database(), operator(app).tenant_id, request)
    return _empty()


@_route("PUT", "/iot/thing-groups/removeThingFromThingGroup", "RemoveThingFromThingGroup")
def remove_thing_from_thing_group(request: ThingGroupMembership) -> Response[dict[str, str]]:
    things.remove_thing_from_thing_group(database(), operator(app).tenant_id, request)
    return _empty()


@_route("GET", "/iot/thing-groups/<thingGroupName>/things", "ListThingsInThingGroup")
def list_things_in_thing_group(
    thingGroupName: str, recursive: Flag = False, maxResults: MaxResults = None, nextToken: Token = None
) -> ListThingsInThingGroupResponse:
    tenant, group = operator(app).tenant_id, things.thing_group(thingGroupName)
    return things.list_things_in_thing_group(database(), tenant, group, maxResults, nextToken)


@_route("GET", "/iot/things/<thingName>/thing-groups", "ListThingGroupsForThing")
def list_thing_groups_for_thing(
    thingName: str, maxResults: MaxResults = None, nextToken: Token = None
) -> ListThingGroupsResponse:
    tenant = operator(app).tenant_id
    return things.list_thing_groups_for_thing(database(), tenant, thing(thingName), maxResults, nextToken)


lambda_handler = handler_for(app)
