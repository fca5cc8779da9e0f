"""AWS IoT's registry (boto3 `iot`): things and thing groups, over the same fleet logic as the native
API (domain/devices.py, groups.py), in the operator's tenant, under the same row-level security.

Mapping: a thing is a device (thingName, thingId and defaultClientId are its device_id), with its
attributes and version; a thing created here has no provision token until the native API issues
one (POST /customer/devices/{id}/token). A thing group is a group (thingGroupName and thingGroupId
are its group_id), with its description and version. An attribute whose value is the empty string
is no attribute: AWS's way to remove one. No thing types, billing groups, nested or dynamic groups,
nor group attributes: a request that names one is InvalidRequestException; tags are ignored, as
CreateJob ignores them.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from pydantic import ValidationError

from jobs_core.aws.jobs import aws_errors
from jobs_core.aws.shapes import TARGET_ARN, AwsError, arn
from jobs_core.aws.thing_shapes import (
    CreateThingGroupRequest,
    CreateThingGroupResponse,
    CreateThingRequest,
    CreateThingResponse,
    DescribeThingGroupResponse,
    DescribeThingResponse,
    GroupNameAndArn,
    ListThingGroupsResponse,
    ListThingsInThingGroupResponse,
    ListThingsResponse,
    ThingAttribute,
    ThingGroupMembership,
    ThingGroupMetadata,
    ThingGroupPropertiesShown,
    UpdateThingRequest,
)
from jobs_core.domain import devices, groups
from jobs_core.domain.fleet_models import DeviceCreate, DeviceUpdate
from jobs_core.domain.groups import GroupsPage
from jobs_core.domain.models import DEVICE_ID_PATTERN
from jobs_core.errors import Conflict, NotFound
from jobs_core.store.db import Database

DEFAULT_RESULTS = 50
NAME = re.compile(DEVICE_ID_PATTERN)


def _invalid(message: str) -> AwsError:
    return AwsError("InvalidRequestException", message)


def checked(name: str, what: str) -> str:
    """A thing or thing group name, against AWS's rule for both."""
    if not NAME.fullmatch(name):
        raise _invalid(f"{what}: 1-128 of [a-zA-Z0-9:_-]")
    return name


def thing_group(value: str) -> str:
    """A thingGroupName path parameter as the client meant it (botocore percent-encodes ':')."""
    return checked(unquote(value), "thingGroupName")


def _unsupported(**given: object) -> None:
    named = [name for name, value in given.items() if value]
    if named:
        raise _invalid(f"not supported by this service: {', '.join(named)}")


def _kept(attributes: dict[str, str] | None) -> dict[str, str]:
    """The attributes a thing keeps: an empty value is none."""
    return {name: value for name, value in (attributes or {}).items() if value != ""}


# Things


def create_thing(db: Database, tenant_id: str, name: str, request: CreateThingRequest) -> CreateThingResponse:
    """Idempotent, as AWS documents it: the same name with the same attributes is the same thing."""
    _unsupported(thingTypeName=request.thingTypeName is not None, billingGroupName=request.billingGroupName is not None)
    payload = request.attributePayload
    attributes = _kept(payload.attributes if payload else None)
    created = CreateThingResponse(thingName=name, thingArn=arn("thing", name), thingId=name)
    message = f"thing {name} is being created and deleted meanwhile: retry"
    for _ in range(2):  # once more if the thing that was there is deleted before it is read
        try:
            devices.register_many(
                db, tenant_id, [DeviceCreate(device_id=name, attributes=attributes)], with_tokens=False
            )
            return created
        except Conflict:
            pass
        try:
            existing = devices.describe(db, tenant_id, name)
        except NotFound:
            continue
        if existing.attributes == attributes:
            return created
        message = f"thing {name} already exists with other attributes"
        break
    raise AwsError("ResourceAlreadyExistsException", message, resourceId=name, resourceArn=created.thingArn)


def describe_thing(db: Database, tenant_id: str, name: str) -> DescribeThingResponse:
    with aws_errors(NotFound="ResourceNotFoundException"):
        device = devices.describe(db, tenant_id, name)
    return DescribeThingResponse(
        defaultClientId=name,
        thingName=name,
        thingId=name,
        thingArn=arn("thing", name),
        attributes=device.attributes,
        version=device.version,
    )


def list_things(
    db: Database,
    tenant_id: str,
    *,
    name: str | None,
    value: str | None,
    thing_type: str | None,
    use_prefix: bool,
    max_results: int | None,
    next_token: str | None,
) -> ListThingsResponse:
    """By name; with attributeName and attributeValue (both or neither): those with that value."""
    _unsupported(thingTypeName=thing_type is not None, usePrefixAttributeValue=use_prefix)
    if (name is None) != (value is None):
        raise _invalid("give attributeName and attributeValue together")
    with aws_errors():
        page = devices.list_devices(
            db,
            tenant_id,
            max_results or DEFAULT_RESULTS,
            next_token,
            attribute=(name, value) if name is not None and value is not None else None,
        )
    things = [
        ThingAttribute(
            thingName=d.device_id, thingArn=arn("thing", d.device_id), attributes=d.attributes, version=d.version
        )
        for d in page.devices
    ]
    return ListThingsResponse(things=things, nextToken=page.next_cursor)


def update_thing(db: Database, tenant_id: str, name: str, request: UpdateThingRequest) -> None:
    """With `merge`, the attributes given are merged (an empty value removes one); without, they
    replace the thing's. expectedVersion: VersionConflictException unless the thing is at it."""
    _unsupported(thingTypeName=request.thingTypeName is not None)
    payload = request.attributePayload
    given = payload.attributes if payload is not None else None
    version = request.expectedVersion
    with aws_errors(NotFound="ResourceNotFoundException", Conflict="VersionConflictException"):
        if version is not None and version < 1:  # versions start at 1
            device = devices.describe(db, tenant_id, name)
            raise Conflict(f"version {version} is stale: the thing is at {device.version}")
        merge = given is None or (payload is not None and payload.merge)
        changes = {key: value or None for key, value in (given or {}).items()} if merge else dict(_kept(given))
        try:
            update = DeviceUpdate.model_validate({"attributes": changes, "version": version})
        except ValidationError as exc:
            raise _invalid(f"attributePayload: {exc.errors()[0].get('msg', 'invalid')}"[:300]) from None
        devices.update(db, tenant_id, name, update, replace=not merge)


def delete_thing(db: Database, tenant_id: str, name: str, expected_version: int | None) -> None:
    """As the native delete: its executions not yet terminal become REMOVED. A thing that does not
    exist is deleted already: success, as AWS documents it."""
    with aws_errors(Conflict="VersionConflictException"):
        try:
            devices.delete(db, tenant_id, name, version=expected_version)
        except NotFound:
            return


# Thing groups


def _groups(page: GroupsPage) -> ListThingGroupsResponse:
    return ListThingGroupsResponse(
        thingGroups=[
            GroupNameAndArn(groupName=g.group_id, groupArn=arn("thinggroup", g.group_id)) for g in page.groups
        ],
        nextToken=page.next_cursor,
    )


def create_thing_group(
    db: Database, tenant_id: str, name: str, request: CreateThingGroupRequest
) -> CreateThingGroupResponse:
    """Idempotent: the same name with the same description is the same group."""
    properties = request.thingGroupProperties
    attributes = properties.attributePayload if properties is not None else None
    _unsupported(
        parentGroupName=request.parentGroupName is not None,
        **{"thingGroupProperties.attributePayload": attributes is not None and bool(attributes.attributes)},
    )
    description = properties.thingGroupDescription if properties is not None else None
    with aws_errors():
        group, created = groups.create(db, tenant_id, name, description)
    group_arn = arn("thinggroup", name)
    if not created and group.description != description:
        raise AwsError(
            "ResourceAlreadyExistsException",
            f"thing group {name} already exists with another description",
            resourceId=name,
            resourceArn=group_arn,
        )
    return CreateThingGroupResponse(thingGroupName=name, thingGroupArn=group_arn, thingGroupId=name)


def describe_thing_group(db: Database, tenant_id: str, name: str) -> DescribeThingGroupResponse:
    with aws_errors(NotFound="ResourceNotFoundException"):
        group = groups.describe(db, tenant_id, name)
    return DescribeThingGroupResponse(
        thingGroupName=name,
        thingGroupId=name,
        thingGroupArn=arn("thinggroup", name),
        version=group.version,
        thingGroupProperties=ThingGroupPropertiesShown(thingGroupDescription=group.description),
        thingGroupMetadata=ThingGroupMetadata(creationDate=group.created_at.timestamp()),
    )


def list_thing_groups(
    db: Database,
    tenant_id: str,
    name_prefix: str | None,
    parent_group: str | None,
    max_results: int | None,
    next_token: str | None,
) -> ListThingGroupsResponse:
    """By name; `recursive` changes nothing (no group has a parent)."""
    _unsupported(parentGroup=parent_group is not None)
    limit = max_results or DEFAULT_RESULTS
    with aws_errors():
        return _groups(groups.list_groups(db, tenant_id, limit, next_token, prefix=name_prefix or ""))


def delete_thing_group(db: Database, tenant_id: str, name: str, expected_version: int | None) -> None:
    """Its memberships go with it; jobs that targeted it keep their executions. A group that does
    not exist is deleted already (the model has no ResourceNotFoundException for this call)."""
    with aws_errors(InUse="InvalidRequestException", Conflict="VersionConflictException"):
        try:
            groups.delete(db, tenant_id, name, version=expected_version)
        except NotFound:
            return


def _named(name: str | None, given_arn: str | None, kind: str, what: str) -> str:
    """A thing or thing group of a membership call, by its name or its ARN (or both, the same)."""
    from_arn = None
    if given_arn is not None:
        found = TARGET_ARN.fullmatch(given_arn)
        if found is None or found.group(1) != kind:
            raise _invalid(f"{what}Arn: not a {kind} ARN")
        from_arn = found.group(2)
    if name is not None and from_arn is not None and name != from_arn:
        raise _invalid(f"{what}Name and {what}Arn name different resources")
    chosen = name if name is not None else from_arn
    if chosen is None:
        raise _invalid(f"give {what}Name or {what}Arn")
    return checked(chosen, f"{what}Name")


def _membership(request: ThingGroupMembership) -> tuple[str, str]:
    group = _named(request.thingGroupName, request.thingGroupArn, "thinggroup", "thingGroup")
    return group, _named(request.thingName, request.thingArn, "thing", "thing")


def add_thing_to_thing_group(db: Database, tenant_id: str, request: ThingGroupMembership) -> None:
    """A member already stays one (success); overrideDynamicGroups changes nothing (no dynamic groups)."""
    group, thing = _membership(request)
    with aws_errors(NotFound="ResourceNotFoundException"):
        groups.add_member(db, tenant_id, group, thing)


def remove_thing_from_thing_group(db: Database, tenant_id: str, request: ThingGroupMembership) -> None:
    """A thing that is not a member is removed already (success); an unknown thing or group is
    ResourceNotFoundException."""
    group, thing = _membership(request)
    with aws_errors(NotFound="ResourceNotFoundException"):
        try:
            groups.remove_member(db, tenant_id, group, thing)
        except NotFound:  # which one: the group, the thing, or the membership
            groups.describe(db, tenant_id, group)
            devices.describe(db, tenant_id, thing)


def list_things_in_thing_group(
    db: Database, tenant_id: str, name: str, max_results: int | None, next_token: str | None
) -> ListThingsInThingGroupResponse:
    """By name; `recursive` changes nothing (no group has a child)."""
    with aws_errors(NotFound="ResourceNotFoundException"):
        page = devices.list_devices(db, tenant_id, max_results or DEFAULT_RESULTS, next_token, group_id=name)
    return ListThingsInThingGroupResponse(things=[d.device_id for d in page.devices], nextToken=page.next_cursor)


def list_thing_groups_for_thing(
    db: Database, tenant_id: str, name: str, max_results: int | None, next_token: str | None
) -> ListThingGroupsResponse:
    with aws_errors(NotFound="ResourceNotFoundException"):
        return _groups(groups.list_for_device(db, tenant_id, name, max_results or DEFAULT_RESULTS, next_token))
