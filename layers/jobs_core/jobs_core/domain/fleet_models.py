"""Request and response bodies of the fleet: devices, their attributes and tokens, and groups."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

from jobs_core.domain.models import DEVICE_ID_PATTERN, Model, RequestBody, Text, Timestamp

# AWS IoT's rules for thing attributes: at most 50 pairs, names of these characters, values of at
# most 800 characters (any text here: AWS also limits their characters, we do not).
ATTRIBUTE_NAME_PATTERN = r"^[A-Za-z0-9_.,@/:#-]{1,128}$"
MAX_ATTRIBUTES = 50
MAX_ATTRIBUTE_VALUE = 800
MAX_DESCRIPTION = 2028  # AWS's thing group description
MAX_IMPORT = 1000
ATTRIBUTE_NAME = re.compile(ATTRIBUTE_NAME_PATTERN)


def check_attributes(attributes: dict[str, str | None]) -> dict[str, str | None]:
    """A flat map as AWS's thing attributes have it (a null value: remove, in an update)."""
    if len(attributes) > MAX_ATTRIBUTES:
        raise ValueError(f"at most {MAX_ATTRIBUTES} attributes")
    for name, value in attributes.items():
        if not ATTRIBUTE_NAME.fullmatch(name):
            raise ValueError(f"an attribute name is 1-128 of A-Z a-z 0-9 _ . , @ / : # - (got {name[:64]!r})")
        if value is not None and (len(value) > MAX_ATTRIBUTE_VALUE or not value.isprintable()):
            raise ValueError(f"attribute {name}: at most {MAX_ATTRIBUTE_VALUE} printable characters")
    return attributes


DeviceId = Annotated[str, Field(pattern=DEVICE_ID_PATTERN)]
Attributes = Annotated[dict[str, str], AfterValidator(check_attributes)]
AttributeChanges = Annotated[dict[str, str | None], AfterValidator(check_attributes)]
Description = Annotated[Text, Field(max_length=MAX_DESCRIPTION)]


class DeviceCreate(RequestBody):
    device_id: DeviceId
    attributes: Attributes = Field(default_factory=dict)


class DeviceImport(RequestBody):
    devices: list[DeviceCreate] = Field(min_length=1, max_length=MAX_IMPORT)


class DeviceToken(Model):
    device_id: str
    token: str = Field(description="the provision token: shown this once, stored only as a hash")


class DeviceRegistered(DeviceToken):
    attributes: dict[str, str]
    created_at: Timestamp


class DevicesImported(Model):
    devices: list[DeviceToken]


class DeviceSummary(Model):
    device_id: str
    attributes: dict[str, str]
    version: int = Field(description="the registry record's version: +1 at every change of its attributes")
    created_at: Timestamp


class TokenState(Model):
    issued_at: Timestamp | None = Field(description="when the current token was issued; null: none (revoked)")
    previous_valid_until: Timestamp | None = Field(
        description="until when the token the last rotation replaced still works; null: it does not"
    )


class DeviceDetail(DeviceSummary):
    groups: list[str] = Field(description="the groups it is in, by id (the first 100)")
    token: TokenState


class DeviceUpdate(RequestBody):
    attributes: AttributeChanges = Field(description="merged into the device's; a null value removes that one")
    version: int | None = Field(default=None, ge=1, description="the version last seen; 409 if it changed")


class DeviceDeleted(Model):
    device_id: str
    removed_executions: int = Field(description="executions not yet terminal, now REMOVED")


class TokenRotate(RequestBody):
    previous_valid_minutes: int = Field(
        default=0, ge=0, le=1440, description="how long the token it replaces keeps working (0: it stops now)"
    )


class TokenRevoked(Model):
    device_id: str
    revoked: int = Field(description="how many tokens stopped working")


class GroupPut(RequestBody):
    description: Description | None = None


class GroupDetail(Model):
    group_id: str
    description: str | None
    device_count: int
    version: int = Field(description="+1 at every change of its description")
    created_at: Timestamp


class GroupDeleted(Model):
    group_id: str
    removed_members: int


class GroupMember(Model):
    group_id: str
    device_id: str
    changed: bool = Field(description="false when it was a member already")


class GroupMembersAdd(RequestBody):
    device_ids: list[DeviceId] = Field(min_length=1, max_length=MAX_IMPORT)


class GroupMembersAdded(Model):
    group_id: str
    added: int = Field(description="devices that were not members yet")
    device_count: int
