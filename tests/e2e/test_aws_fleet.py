"""AWS IoT's registry (things, thing groups) driven by boto3's real `iot` client against the local
server over HTTP, next to the native API that issues a thing's first token."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from jobs_local import devjwt
from tests.e2e.test_aws_api import ARN, control_plane, data_plane, document, raises
from tests.helpers import hintless

THING_ARN = "arn:aws:iot:us-east-1:000000000000:thing"
GROUP_ARN = "arn:aws:iot:us-east-1:000000000000:thinggroup"


@pytest.fixture
def statuses() -> Iterator[list[int]]:
    """Every HTTP status the iot clients of a test got: never a 5xx."""
    seen: list[int] = []
    yield seen
    assert seen and all(status < 500 for status in seen), seen


def iot(base_url: str, tenant: str, statuses: list[int]) -> Any:
    client = control_plane(base_url, tenant)

    def record(http_response: Any, **kwargs: Any) -> None:
        statuses.append(http_response.status_code)

    client.meta.events.register("after-call.iot", record)
    return client


def native(base_url: str, tenant: str, method: str, path: str, token: str | None = None) -> tuple[int, Any]:
    """The native API: the operator's JWT, or a device's token."""
    headers = {"x-provision-token": token} if token else {"authorization": f"Bearer {devjwt.mint(tenant, 'bob')}"}
    request = urllib.request.Request(base_url + path, method=method, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request) as response:  # noqa: S310
            return response.status, json.load(response)
    except urllib.error.HTTPError as refused:
        return refused.code, json.load(refused)


def answer(response: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in response.items() if key != "ResponseMetadata"}


def test_create_thing_is_idempotent_and_the_thing_has_no_token_until_one_is_issued(
    base_url: str, tenant: str, statuses: list[int]
) -> None:
    client = iot(base_url, tenant, statuses)
    payload = {"attributes": {"model": "s-100", "site": "lab"}}
    created = answer(client.create_thing(thingName="t-1", attributePayload=payload))
    assert created == {"thingName": "t-1", "thingArn": f"{THING_ARN}/t-1", "thingId": "t-1"}
    assert answer(client.create_thing(thingName="t-1", attributePayload=payload)) == created  # same configuration
    exists = raises(
        client,
        "ResourceAlreadyExistsException",
        lambda: client.create_thing(thingName="t-1", attributePayload={"attributes": {"model": "s-200"}}),
    )
    assert (exists["resourceId"], exists["resourceArn"]) == ("t-1", f"{THING_ARN}/t-1")
    assert exists["ResponseMetadata"]["HTTPStatusCode"] == 409
    assert client.describe_thing(thingName="t-1")["attributes"] == payload["attributes"]  # untouched

    status, device = native(base_url, tenant, "GET", "/customer/devices/t-1")
    assert status == 200 and device["token"]["issued_at"] is None  # no token: it cannot call
    status, issued = native(base_url, tenant, "POST", "/customer/devices/t-1/token")
    assert status == 201 and issued["token"]
    status, pending = native(base_url, tenant, "GET", "/device/v1/jobs/pending", token=issued["token"])
    assert (status, hintless(pending)) == (200, {"jobs": []})
    # a job for it reaches it through either door
    client.create_job(jobId="t-1-job", targets=[f"{ARN}:thing/t-1"], document=document("1"))
    jobs = data_plane(base_url, issued["token"])
    assert [j["jobId"] for j in jobs.get_pending_job_executions(thingName="t-1")["queuedJobs"]] == ["t-1-job"]


def test_describe_list_by_attribute_and_page_by_next_token(base_url: str, tenant: str, statuses: list[int]) -> None:
    client = iot(base_url, tenant, statuses)
    for i in range(5):
        client.create_thing(thingName=f"a-{i}", attributePayload={"attributes": {"site": "north", "n": str(i)}})
    for i in range(3):
        client.create_thing(thingName=f"b-{i}", attributePayload={"attributes": {"site": "south"}})
    described = answer(client.describe_thing(thingName="a-2"))
    assert described == {
        "defaultClientId": "a-2",
        "thingName": "a-2",
        "thingId": "a-2",
        "thingArn": f"{THING_ARN}/a-2",
        "attributes": {"site": "north", "n": "2"},
        "version": 1,
    }
    first = client.list_things(attributeName="site", attributeValue="north", maxResults=2)
    assert [t["thingName"] for t in first["things"]] == ["a-0", "a-1"]
    assert first["things"][0] == {
        "thingName": "a-0",
        "thingArn": f"{THING_ARN}/a-0",
        "attributes": {"site": "north", "n": "0"},
        "version": 1,
    }
    pages, token = [first], first["nextToken"]
    while token:
        pages.append(client.list_things(attributeName="site", attributeValue="north", maxResults=2, nextToken=token))
        token = pages[-1].get("nextToken")
    assert [[t["thingName"] for t in page["things"]] for page in pages] == [["a-0", "a-1"], ["a-2", "a-3"], ["a-4"]]
    paginator = client.get_paginator("list_things").paginate(PaginationConfig={"PageSize": 3})
    assert [t["thingName"] for page in paginator for t in page["things"]] == [f"a-{i}" for i in range(5)] + [
        f"b-{i}" for i in range(3)
    ]
    assert client.list_things(attributeName="site", attributeValue="east")["things"] == []
    for call in (
        lambda: client.list_things(attributeName="site", attributeValue="no", usePrefixAttributeValue=True),
        lambda: client.list_things(thingTypeName="sensor"),
        lambda: client.list_things(attributeName="site"),
        lambda: client.list_things(maxResults=251),
        lambda: client.list_things(nextToken="not a token!"),
    ):
        raises(client, "InvalidRequestException", call)
    raises(client, "ResourceNotFoundException", lambda: client.describe_thing(thingName="ghost"))


def test_update_thing_merges_replaces_and_checks_the_version(base_url: str, tenant: str, statuses: list[int]) -> None:
    client = iot(base_url, tenant, statuses)
    client.create_thing(thingName="u-1", attributePayload={"attributes": {"a": "1", "b": "2"}})

    def state() -> tuple[dict[str, str], int]:
        thing = client.describe_thing(thingName="u-1")
        return thing["attributes"], thing["version"]

    client.update_thing(thingName="u-1", attributePayload={"attributes": {"b": "", "c": "3"}, "merge": True})
    assert state() == ({"a": "1", "c": "3"}, 2)  # merged; an empty value removes one
    client.update_thing(thingName="u-1", attributePayload={"attributes": {"d": "4", "e": ""}})
    assert state() == ({"d": "4"}, 3)  # without merge: replaced
    conflict = raises(
        client,
        "VersionConflictException",
        lambda: client.update_thing(thingName="u-1", attributePayload={"attributes": {"x": "1"}}, expectedVersion=2),
    )
    assert conflict["ResponseMetadata"]["HTTPStatusCode"] == 409
    raises(client, "VersionConflictException", lambda: client.update_thing(thingName="u-1", expectedVersion=0))
    assert state() == ({"d": "4"}, 3)  # untouched
    client.update_thing(thingName="u-1", attributePayload={"attributes": {"e": "5"}, "merge": True}, expectedVersion=3)
    assert state() == ({"d": "4", "e": "5"}, 4)
    client.update_thing(thingName="u-1", attributePayload={"attributes": {}})
    assert state() == ({}, 5)
    too_many = {"attributes": {f"k{i}": "v" for i in range(51)}}
    for call in (
        lambda: client.update_thing(thingName="u-1", thingTypeName="sensor"),
        lambda: client.update_thing(thingName="u-1", attributePayload={"attributes": {"a": "has space"}}),
        lambda: client.update_thing(thingName="u-1", attributePayload=too_many),
    ):
        raises(client, "InvalidRequestException", call)
    raises(client, "ResourceNotFoundException", lambda: client.update_thing(thingName="ghost", attributePayload={}))


def test_delete_thing_removes_its_active_execution_and_its_job_completes(
    base_url: str, tenant: str, statuses: list[int]
) -> None:
    client = iot(base_url, tenant, statuses)
    client.create_thing_group(thingGroupName="line")
    tokens = {}
    for name in ("d-1", "d-2"):
        client.create_thing(thingName=name)
        client.add_thing_to_thing_group(thingGroupName="line", thingName=name)
        tokens[name] = native(base_url, tenant, "POST", f"/customer/devices/{name}/token")[1]["token"]
    client.create_job(jobId="del-1", targets=[f"{ARN}:thinggroup/line"], document=document("1"))
    data_plane(base_url, tokens["d-1"]).start_next_pending_job_execution(thingName="d-1")
    data_plane(base_url, tokens["d-1"]).update_job_execution(thingName="d-1", jobId="del-1", status="SUCCEEDED")
    data_plane(base_url, tokens["d-2"]).start_next_pending_job_execution(thingName="d-2")  # IN_PROGRESS

    raises(client, "VersionConflictException", lambda: client.delete_thing(thingName="d-2", expectedVersion=5))
    job = client.describe_job(jobId="del-1")["job"]
    assert (job["status"], job["jobProcessDetails"]["numberOfInProgressThings"]) == ("IN_PROGRESS", 1)

    client.delete_thing(thingName="d-2", expectedVersion=1)
    job = client.describe_job(jobId="del-1")["job"]
    assert job["status"] == "COMPLETED"  # its last active execution was removed
    details = job["jobProcessDetails"]
    assert (details["numberOfRemovedThings"], details["numberOfInProgressThings"]) == (1, 0)
    assert details["numberOfSucceededThings"] == 1
    removed = client.list_job_executions_for_job(jobId="del-1", status="REMOVED")["executionSummaries"]
    assert [s["thingArn"] for s in removed] == [f"{THING_ARN}/d-2"]
    raises(client, "ResourceNotFoundException", lambda: client.describe_thing(thingName="d-2"))
    assert client.list_things_in_thing_group(thingGroupName="line")["things"] == ["d-1"]
    old = data_plane(base_url, tokens["d-2"])  # its token went with it
    raises(old, "CertificateValidationException", lambda: old.get_pending_job_executions(thingName="d-2"))
    client.delete_thing(thingName="d-2")  # deleted already: success, as AWS documents it
    client.delete_thing(thingName="d-1")  # without expectedVersion
    assert client.list_things()["things"] == []


def test_thing_groups_and_their_members(base_url: str, tenant: str, statuses: list[int]) -> None:
    client = iot(base_url, tenant, statuses)
    properties = {"thingGroupDescription": "the lab's benches"}
    created = answer(client.create_thing_group(thingGroupName="lab", thingGroupProperties=properties))
    assert created == {"thingGroupName": "lab", "thingGroupArn": f"{GROUP_ARN}/lab", "thingGroupId": "lab"}
    assert answer(client.create_thing_group(thingGroupName="lab", thingGroupProperties=properties)) == created
    exists = raises(client, "ResourceAlreadyExistsException", lambda: client.create_thing_group(thingGroupName="lab"))
    assert exists["resourceArn"] == f"{GROUP_ARN}/lab"
    described = client.describe_thing_group(thingGroupName="lab")
    assert (described["thingGroupId"], described["thingGroupArn"], described["version"]) == (
        "lab",
        created["thingGroupArn"],
        1,
    )
    assert described["thingGroupProperties"] == properties
    assert isinstance(described["thingGroupMetadata"]["creationDate"], datetime)
    client.create_thing_group(thingGroupName="lab-2", tags=[{"Key": "team", "Value": "qa"}])  # tags: ignored
    client.create_thing_group(thingGroupName="yard")
    listed = client.list_thing_groups(maxResults=2)
    assert listed["thingGroups"] == [
        {"groupName": "lab", "groupArn": f"{GROUP_ARN}/lab"},
        {"groupName": "lab-2", "groupArn": f"{GROUP_ARN}/lab-2"},
    ]
    rest = client.list_thing_groups(maxResults=2, nextToken=listed["nextToken"])
    assert [g["groupName"] for g in rest["thingGroups"]] == ["yard"] and "nextToken" not in rest
    assert [g["groupName"] for g in client.list_thing_groups(namePrefixFilter="lab")["thingGroups"]] == ["lab", "lab-2"]

    for name in ("g-1", "g-2", "g-3"):
        client.create_thing(thingName=name)
        client.add_thing_to_thing_group(thingGroupName="lab", thingName=name)
    client.add_thing_to_thing_group(thingGroupArn=f"{GROUP_ARN}/lab-2", thingArn=f"{THING_ARN}/g-1")  # by ARN
    client.add_thing_to_thing_group(thingGroupName="yard", thingName="g-1")
    client.add_thing_to_thing_group(thingGroupName="lab", thingName="g-1")  # a member already: success
    first = client.list_things_in_thing_group(thingGroupName="lab", maxResults=2)
    rest = client.list_things_in_thing_group(thingGroupName="lab", maxResults=2, nextToken=first["nextToken"])
    assert (first["things"], rest["things"]) == (["g-1", "g-2"], ["g-3"])
    assert client.list_things_in_thing_group(thingGroupName="lab", recursive=True)["things"] == ["g-1", "g-2", "g-3"]
    mine = client.list_thing_groups_for_thing(thingName="g-1", maxResults=2)
    assert [g["groupName"] for g in mine["thingGroups"]] == ["lab", "lab-2"]
    more = client.list_thing_groups_for_thing(thingName="g-1", nextToken=mine["nextToken"])
    assert more["thingGroups"] == [{"groupName": "yard", "groupArn": f"{GROUP_ARN}/yard"}]

    client.remove_thing_from_thing_group(thingGroupName="lab", thingName="g-2")
    client.remove_thing_from_thing_group(thingGroupName="lab", thingName="g-2")  # not a member: success
    client.remove_thing_from_thing_group(thingGroupArn=f"{GROUP_ARN}/yard", thingArn=f"{THING_ARN}/g-1")
    assert client.list_things_in_thing_group(thingGroupName="lab")["things"] == ["g-1", "g-3"]
    for call in (
        lambda: client.add_thing_to_thing_group(thingGroupName="lab", thingName="ghost"),
        lambda: client.add_thing_to_thing_group(thingGroupName="ghost", thingName="g-1"),
        lambda: client.remove_thing_from_thing_group(thingGroupName="lab", thingName="ghost"),
        lambda: client.remove_thing_from_thing_group(thingGroupName="ghost", thingName="g-1"),
        lambda: client.list_things_in_thing_group(thingGroupName="ghost"),
        lambda: client.list_thing_groups_for_thing(thingName="ghost"),
        lambda: client.describe_thing_group(thingGroupName="ghost"),
    ):
        raises(client, "ResourceNotFoundException", call)

    raises(
        client, "VersionConflictException", lambda: client.delete_thing_group(thingGroupName="lab", expectedVersion=2)
    )
    client.delete_thing_group(thingGroupName="lab", expectedVersion=1)
    client.delete_thing_group(thingGroupName="lab")  # deleted already: success
    raises(client, "ResourceNotFoundException", lambda: client.describe_thing_group(thingGroupName="lab"))
    assert [g["groupName"] for g in client.list_thing_groups_for_thing(thingName="g-1")["thingGroups"]] == ["lab-2"]
    assert client.describe_thing(thingName="g-3")["version"] == 1  # the things stay


def test_another_tenants_things_and_groups_are_not_found(
    base_url: str, tenant: str, other_tenant: str, statuses: list[int]
) -> None:
    mine, theirs = iot(base_url, tenant, statuses), iot(base_url, other_tenant, statuses)
    mine.create_thing(thingName="s-1", attributePayload={"attributes": {"secret": "yes"}})
    mine.create_thing_group(thingGroupName="sg")
    mine.add_thing_to_thing_group(thingGroupName="sg", thingName="s-1")
    for call in (
        lambda: theirs.describe_thing(thingName="s-1"),
        lambda: theirs.update_thing(thingName="s-1", attributePayload={"attributes": {"secret": "no"}}),
        lambda: theirs.list_thing_groups_for_thing(thingName="s-1"),
        lambda: theirs.describe_thing_group(thingGroupName="sg"),
        lambda: theirs.list_things_in_thing_group(thingGroupName="sg"),
        lambda: theirs.add_thing_to_thing_group(thingGroupName="sg", thingName="s-1"),
        lambda: theirs.remove_thing_from_thing_group(thingGroupName="sg", thingName="s-1"),
    ):
        raises(theirs, "ResourceNotFoundException", call)
    assert theirs.list_things()["things"] == [] and theirs.list_thing_groups()["thingGroups"] == []
    theirs.delete_thing(thingName="s-1")  # none of theirs: deleted already, as AWS answers it
    theirs.delete_thing_group(thingGroupName="sg")
    # the same names are theirs to take, apart from mine
    theirs.create_thing(thingName="s-1", attributePayload={"attributes": {"secret": "theirs"}})
    assert theirs.describe_thing(thingName="s-1")["attributes"] == {"secret": "theirs"}
    assert mine.describe_thing(thingName="s-1")["attributes"] == {"secret": "yes"}
    assert mine.list_things_in_thing_group(thingGroupName="sg")["things"] == ["s-1"]


def test_bad_names_and_what_this_service_does_not_model_are_invalid_requests(
    base_url: str, tenant: str, statuses: list[int]
) -> None:
    client = iot(base_url, tenant, statuses)
    client.create_thing(thingName="ok:thing_1")  # ':' and '_' are in the rule (botocore percent-encodes ':')
    assert client.describe_thing(thingName="ok:thing_1")["thingArn"] == f"{THING_ARN}/ok:thing_1"
    client.create_thing_group(thingGroupName="ok:group")
    client.add_thing_to_thing_group(thingGroupName="ok:group", thingName="ok:thing_1")
    assert client.list_things_in_thing_group(thingGroupName="ok:group")["things"] == ["ok:thing_1"]
    long = "x" * 129
    for call in (
        lambda: client.create_thing(thingName="bad name"),
        lambda: client.create_thing(thingName=long),
        lambda: client.describe_thing(thingName="bad name"),
        lambda: client.update_thing(thingName=long, attributePayload={}),
        lambda: client.delete_thing(thingName="bad name"),
        lambda: client.list_thing_groups_for_thing(thingName=long),
        lambda: client.create_thing_group(thingGroupName="bad group"),
        lambda: client.describe_thing_group(thingGroupName=long),
        lambda: client.delete_thing_group(thingGroupName="bad group"),
        lambda: client.list_things_in_thing_group(thingGroupName="bad group"),
        lambda: client.add_thing_to_thing_group(thingGroupName="ok:group", thingName="bad name"),
        lambda: client.add_thing_to_thing_group(thingGroupName="ok:group", thingArn=f"{GROUP_ARN}/ok:group"),
        lambda: client.add_thing_to_thing_group(thingGroupName="ok:group"),
        lambda: client.remove_thing_from_thing_group(
            thingGroupName="ok:group", thingGroupArn=f"{GROUP_ARN}/other", thingName="ok:thing_1"
        ),
        lambda: client.create_thing(thingName="t", thingTypeName="sensor"),
        lambda: client.create_thing(thingName="t", billingGroupName="billing"),
        lambda: client.create_thing(thingName="t", attributePayload={"attributes": {"bad name": "v"}}),
        lambda: client.create_thing_group(thingGroupName="child", parentGroupName="ok:group"),
        lambda: client.create_thing_group(
            thingGroupName="g", thingGroupProperties={"attributePayload": {"attributes": {"a": "1"}}}
        ),
        lambda: client.list_thing_groups(parentGroup="ok:group"),
        lambda: client.list_thing_types(),  # an operation this service does not speak
    ):
        raises(client, "InvalidRequestException", call)
    assert [t["thingName"] for t in client.list_things()["things"]] == ["ok:thing_1"]  # nothing else was made


def test_a_continuous_job_follows_its_thing_groups_through_the_aws_door(
    base_url: str, tenant: str, statuses: list[int]
) -> None:
    client = iot(base_url, tenant, statuses)
    for name in ("c-1", "c-2", "c-3", "c-4"):
        client.create_thing(thingName=name)
    for name in ("east", "west", "north"):
        client.create_thing_group(thingGroupName=name)
    client.add_thing_to_thing_group(thingGroupName="east", thingName="c-1")
    targets = [f"{GROUP_ARN}/east", f"{THING_ARN}/c-4"]
    client.create_job(jobId="follow", targets=targets, document=document("config"), targetSelection="CONTINUOUS")
    described = client.describe_job(jobId="follow")["job"]
    assert described["targetSelection"] == "CONTINUOUS" and sorted(described["targets"]) == sorted(targets)
    assert described["jobProcessDetails"]["numberOfQueuedThings"] == 2  # c-1 and c-4

    client.add_thing_to_thing_group(thingGroupName="east", thingName="c-2")  # joins: queued at once
    client.associate_targets_with_job(jobId="follow", targets=[f"{GROUP_ARN}/west"], comment="more")
    client.add_thing_to_thing_group(thingGroupName="west", thingName="c-3")
    client.remove_thing_from_thing_group(thingGroupName="east", thingName="c-1")  # leaves before it started
    process = client.describe_job(jobId="follow")["job"]["jobProcessDetails"]
    assert (process["numberOfQueuedThings"], process["numberOfRemovedThings"]) == (3, 1)
    executions = client.list_job_executions_for_job(jobId="follow")["executionSummaries"]
    assert {e["thingArn"].rsplit("/", 1)[1]: e["jobExecutionSummary"]["status"] for e in executions} == {
        "c-1": "REMOVED",
        "c-2": "QUEUED",
        "c-3": "QUEUED",
        "c-4": "QUEUED",
    }
    assert [j["targetSelection"] for j in client.list_jobs()["jobs"] if j["jobId"] == "follow"] == ["CONTINUOUS"]
    raises(
        client,
        "ResourceNotFoundException",
        lambda: client.associate_targets_with_job(jobId="follow", targets=[f"{GROUP_ARN}/nope"]),
    )
    raises(
        client,
        "InvalidRequestException",
        lambda: client.associate_targets_with_job(jobId="follow", targets=[f"{THING_ARN}/c-2"]),
    )
    raises(client, "InvalidRequestException", lambda: client.delete_thing_group(thingGroupName="west"))

    client.create_job(
        jobId="snap", targets=[f"{GROUP_ARN}/north"] + [f"{THING_ARN}/c-{i}" for i in (1, 2)], document=document("x")
    )
    raises(
        client,
        "InvalidRequestException",
        lambda: client.associate_targets_with_job(jobId="snap", targets=[f"{GROUP_ARN}/north"]),
    )
    many = [f"{GROUP_ARN}/g{i}" for i in range(101)]
    raises(
        client, "InvalidRequestException", lambda: client.create_job(jobId="big", targets=many, document=document("x"))
    )
