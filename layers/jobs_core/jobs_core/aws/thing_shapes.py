"""AWS IoT's registry shapes (iot 2015-05-28): things and thing groups, as botocore's model has them
(member names, types, the constraints the service checks). Only what this service speaks is here;
the conventions are shapes.py's (AwsBody for a request body, AwsShape for an answer)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from jobs_core.aws.shapes import AwsBody, AwsShape
from jobs_core.domain.fleet_models import MAX_ATTRIBUTES, Description

# AWS's AttributeName and AttributeValue (an empty value removes the attribute in an update).
ATTRIBUTE_NAME_PATTERN = r"^[a-zA-Z0-9_.,@/:#-]+$"
ATTRIBUTE_VALUE_PATTERN = r"^[a-zA-Z0-9_.,@/:#=\[\]-]*$"
AttributeName = Annotated[str, Field(max_length=128, pattern=ATTRIBUTE_NAME_PATTERN)]
AttributeValue = Annotated[str, Field(max_length=800, pattern=ATTRIBUTE_VALUE_PATTERN)]
AttributeMap = Annotated[dict[AttributeName, AttributeValue], Field(max_length=MAX_ATTRIBUTES)]


class AttributePayload(AwsBody):
    attributes: AttributeMap | None = None
    merge: bool | None = None


class CreateThingRequest(AwsBody):
    thingTypeName: str | None = None
    attributePayload: AttributePayload | None = None
    billingGroupName: str | None = None


class UpdateThingRequest(AwsBody):
    thingTypeName: str | None = None
    attributePayload: AttributePayload | None = None
    expectedVersion: int | None = Field(default=None, ge=0, le=2**63 - 1)
    removeThingType: bool | None = None


class ThingGroupProperties(AwsBody):
    thingGroupDescription: Description | None = None
    attributePayload: AttributePayload | None = None


class CreateThingGroupRequest(AwsBody):
    parentGroupName: str | None = None
    thingGroupProperties: ThingGroupProperties | None = None
    tags: list[dict[str, Any]] | None = None


class ThingGroupMembership(AwsBody):
    """AddThingToThingGroup's and RemoveThingFromThingGroup's body: each side by name or by ARN."""

    thingGroupName: str | None = None
    thingGroupArn: str | None = Field(default=None, max_length=2048)
    thingName: str | None = None
    thingArn: str | None = Field(default=None, max_length=2048)
    overrideDynamicGroups: bool | None = None


class CreateThingResponse(AwsShape):
    thingName: str
    thingArn: str
    thingId: str


class DescribeThingResponse(AwsShape):
    defaultClientId: str
    thingName: str
    thingId: str
    thingArn: str
    attributes: dict[str, str]
    version: int


class ThingAttribute(AwsShape):
    thingName: str
    thingArn: str
    attributes: dict[str, str]
    version: int


class ListThingsResponse(AwsShape):
    things: list[ThingAttribute]
    nextToken: str | None = None


class CreateThingGroupResponse(AwsShape):
    thingGroupName: str
    thingGroupArn: str
    thingGroupId: str


class GroupNameAndArn(AwsShape):
    groupName: str
    groupArn: str


class ThingGroupPropertiesShown(AwsShape):
    """ThingGroupProperties in an answer (named apart from the request's in the OpenAPI document)."""

    thingGroupDescription: str | None = None


class ThingGroupMetadata(AwsShape):
    """No parentGroupName nor rootToParentThingGroups: no group has a parent."""

    creationDate: float


class DescribeThingGroupResponse(AwsShape):
    thingGroupName: str
    thingGroupId: str
    thingGroupArn: str
    version: int
    thingGroupProperties: ThingGroupPropertiesShown
    thingGroupMetadata: ThingGroupMetadata


class ListThingGroupsResponse(AwsShape):
    """ListThingGroups' and ListThingGroupsForThing's answer."""

    thingGroups: list[GroupNameAndArn]
    nextToken: str | None = None


class ListThingsInThingGroupResponse(AwsShape):
    things: list[str]
    nextToken: str | None = None
