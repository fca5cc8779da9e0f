"""AWS IoT's job templates (CreateJobTemplate, DescribeJobTemplate, ListJobTemplates,
DeleteJobTemplate, CreateJob's jobTemplateArn and documentParameters), driven by the real boto3
clients against a local server of their own, which signs presigned URLs for the S3 that
S3_ENDPOINT_URL names with the test's key: a device's URL is checked for its endpoint, signature
and expiry."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import botocore
import pytest
from botocore.config import Config

from jobs_core.domain import devices
from jobs_core.store.db import Database
from jobs_local import devjwt
from jobs_local.pooler import free_port
from tests.conftest import local_server
from tests.e2e.test_aws_api import ARN, control_plane, data_plane, raises

S3_ENDPOINT = f"http://127.0.0.1:{free_port()}"  # nothing listens: signing is local, no S3 call per read
ROLE = "arn:aws:iam::123456789012:role/firmware-download"
FIRMWARE = "${aws:iot:s3-presigned-url:https://s3.amazonaws.com/firmware/fw-${aws:iot:parameter:version}.bin}"
DOCUMENT = json.dumps({"operation": "firmware", "version": "${aws:iot:parameter:version}", "url": FIRMWARE})
# a botocore that sends what its own validation would refuse: what the server makes of it
UNCHECKED = Config(
    signature_version=botocore.UNSIGNED,
    retries={"mode": "standard", "total_max_attempts": 1},
    parameter_validation=False,
)


@pytest.fixture(scope="module")
def server(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    signing = {"S3_ENDPOINT_URL": S3_ENDPOINT, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    with local_server({**env, **signing}, tmp_path_factory.mktemp("templates") / "server.log") as url:
        yield url


@pytest.fixture
def things(env: dict[str, str], tenant: str) -> Iterator[dict[str, str]]:
    """Two devices of the tenant, thing-1 and thing-2; their tokens."""
    db = Database(lambda refresh: env["DATABASE_URL"])
    yield devices.register(db, tenant, ["thing-1", "thing-2"])
    db.close()


def unchecked(base_url: str, tenant: str) -> Any:
    """control_plane's client, without botocore's own checks of the parameters."""
    client = boto3.client("iot", region_name="us-east-1", endpoint_url=base_url + "/iot", config=UNCHECKED)
    jwt = devjwt.mint(tenant, "alice")

    def add_bearer(request: Any, **kwargs: Any) -> None:
        request.headers["Authorization"] = f"Bearer {jwt}"

    client.meta.events.register("before-sign.iot.*", add_bearer)
    return client


def firmware_template(iot: Any, template_id: str = "fw-template", **extra: Any) -> dict[str, Any]:
    created: dict[str, Any] = iot.create_job_template(
        jobTemplateId=template_id,
        document=DOCUMENT,
        description="firmware, by version",
        presignedUrlConfig={"roleArn": ROLE, "expiresInSec": 900},
        timeoutConfig={"inProgressTimeoutInMinutes": 30},
        **extra,
    )
    return created


def test_create_describe_list_and_delete_a_template(server: str, tenant: str) -> None:
    iot = control_plane(server, tenant)
    created = firmware_template(
        iot,
        jobExecutionsRetryConfig={"criteriaList": [{"failureType": "FAILED", "numberOfRetries": 2}]},
        jobExecutionsRolloutConfig={"maximumPerMinute": 50},
        abortConfig={
            "criteriaList": [
                {"failureType": "ALL", "action": "CANCEL", "thresholdPercentage": 20, "minNumberOfExecutedThings": 10}
            ]
        },
        tags=[{"Key": "team", "Value": "firmware"}],  # accepted, not kept (as CreateJob's)
    )
    assert created["jobTemplateArn"] == "arn:aws:iot:us-east-1:000000000000:jobtemplate/fw-template"
    assert created["jobTemplateId"] == "fw-template"

    described = iot.describe_job_template(jobTemplateId="fw-template")
    assert described["jobTemplateArn"] == created["jobTemplateArn"]
    assert described["description"] == "firmware, by version"
    assert json.loads(described["document"]) == json.loads(DOCUMENT)  # the placeholders as they were given
    assert described["presignedUrlConfig"] == {"roleArn": ROLE, "expiresInSec": 900}
    assert described["timeoutConfig"] == {"inProgressTimeoutInMinutes": 30}
    assert described["jobExecutionsRetryConfig"] == {"criteriaList": [{"failureType": "FAILED", "numberOfRetries": 2}]}
    assert described["jobExecutionsRolloutConfig"] == {"maximumPerMinute": 50}
    assert described["abortConfig"]["criteriaList"][0]["thresholdPercentage"] == 20
    assert described["createdAt"].year >= 2025

    for name in ("a-reboot", "b-config"):
        iot.create_job_template(jobTemplateId=name, document=json.dumps({"operation": name}), description=name)
    first = iot.list_job_templates(maxResults=2)
    assert [t["jobTemplateId"] for t in first["jobTemplates"]] == ["a-reboot", "b-config"]
    assert first["jobTemplates"][0]["jobTemplateArn"].endswith(":jobtemplate/a-reboot")
    assert first["jobTemplates"][0]["description"] == "a-reboot"
    rest = iot.list_job_templates(maxResults=2, nextToken=first["nextToken"])
    assert [t["jobTemplateId"] for t in rest["jobTemplates"]] == ["fw-template"] and "nextToken" not in rest
    paged = iot.get_paginator("list_job_templates").paginate(PaginationConfig={"PageSize": 1})
    assert [t["jobTemplateId"] for page in paged for t in page["jobTemplates"]] == [
        "a-reboot",
        "b-config",
        "fw-template",
    ]

    iot.delete_job_template(jobTemplateId="a-reboot")
    raises(iot, "ResourceNotFoundException", lambda: iot.describe_job_template(jobTemplateId="a-reboot"))
    raises(iot, "ResourceNotFoundException", lambda: iot.delete_job_template(jobTemplateId="a-reboot"))
    assert [t["jobTemplateId"] for t in iot.list_job_templates()["jobTemplates"]] == ["b-config", "fw-template"]


def test_what_a_template_cannot_be_is_a_modelled_error(server: str, tenant: str) -> None:
    iot = control_plane(server, tenant)
    firmware_template(iot)
    duplicate = raises(iot, "ConflictException", lambda: firmware_template(iot))  # CreateJobTemplate's 409
    assert duplicate["ResponseMetadata"]["HTTPStatusCode"] == 409 and duplicate["resourceId"] == "fw-template"
    raises(iot, "ResourceNotFoundException", lambda: iot.describe_job_template(jobTemplateId="nope"))
    raises(iot, "ResourceNotFoundException", lambda: iot.delete_job_template(jobTemplateId="nope"))
    for bad_id in ("x" * 65, "a.b", "a:b"):
        raises(iot, "InvalidRequestException", lambda: iot.describe_job_template(jobTemplateId=bad_id))  # noqa: B023
        raises(
            iot,
            "InvalidRequestException",
            lambda: iot.create_job_template(jobTemplateId=bad_id, document="{}", description="x"),  # noqa: B023
        )
    for unsupported in (
        {"documentSource": "https://s3.amazonaws.com/docs/job.json"},
        {"jobArn": f"{ARN}:job/some-job"},
        {"document": "{}", "maintenanceWindows": [{"startTime": "cron(0 0 * * ? *)", "durationInMinutes": 60}]},
        {"document": "{}", "destinationPackageVersions": [f"{ARN}:package/p/version/1"]},
    ):
        refused = raises(
            iot,
            "InvalidRequestException",
            lambda: iot.create_job_template(jobTemplateId="t2", description="x", **unsupported),  # noqa: B023
        )
        assert "not supported by this service" in refused["Error"]["Message"]
    for document in (None, "[1]", "not json"):
        given = {} if document is None else {"document": document}
        raises(
            iot,
            "InvalidRequestException",
            lambda: iot.create_job_template(jobTemplateId="t2", description="x", **given),  # noqa: B023
        )
    # placeholders that cannot be used: not an S3 object, too many parameters, a badly named one
    for placeholders in (
        {"url": "${aws:iot:s3-presigned-url:https://example.com/fw.bin}"},
        {f"p{i}": f"${{aws:iot:parameter:p{i}}}" for i in range(11)},
        {"v": "${aws:iot:parameter:a.b}"},
    ):
        raises(
            iot,
            "InvalidRequestException",
            lambda: iot.create_job_template(
                jobTemplateId="t2",
                description="x",
                document=json.dumps(placeholders),  # noqa: B023
            ),
        )
    loose = unchecked(server, tenant)  # what botocore would not send
    for body in (
        {"document": "{}"},  # no description: required
        {"document": "{}", "description": "x", "presignedUrlConfig": {"expiresInSec": 30}},
        {"document": "{}", "description": "x", "presignedUrlConfig": {"roleArn": "short"}},
        {"document": "{}", "description": "x", "timeoutConfig": {"inProgressTimeoutInMinutes": 0}},
        {"document": "{}", "description": "x", "jobExecutionsRetryConfig": {"criteriaList": []}},
    ):
        raises(loose, "InvalidRequestException", lambda: loose.create_job_template(jobTemplateId="t2", **body))  # noqa: B023
    raises(loose, "InvalidRequestException", lambda: loose.list_job_templates(maxResults=251))
    raises(loose, "InvalidRequestException", lambda: loose.list_job_templates(nextToken="!!not a token"))
    assert [t["jobTemplateId"] for t in iot.list_job_templates()["jobTemplates"]] == ["fw-template"]


BAD_DOCUMENTS = (
    "[" * 5000,  # deeper than the parser goes
    '{"a": ' + "[" * 40 + "]" * 40 + "}",  # deeper than a document may be
    '{"a": NaN}',
    '{"a": 1e999}',
    '{"a": ' + "1" * 5000 + "}",
    '{"a": "\\u0000"}',
    '{"a": "\\ud800"}',
    json.dumps({"a": "x" * 33_000}),
    json.dumps({"url": "${aws:iot:s3-presigned-url:https://s3.amazonaws.com/b/" + "k" * 2000 + "}"}),
)


def test_no_input_is_a_server_error(server: str, tenant: str, things: dict[str, str]) -> None:
    """Whatever the body, a modelled error: never a 5xx."""
    iot = control_plane(server, tenant)
    template_arn = firmware_template(iot)["jobTemplateArn"]
    target = {"targets": [f"{ARN}:thing/thing-1"]}
    jwt = devjwt.mint(tenant, "alice")
    template_bodies: list[bytes | dict[str, Any]] = [
        b"", b"null", b"[]", b"{", b'{"description": "x", "document": "{}"} trailing',
        {"description": 5, "document": "{}"},
        {"description": "\u0000", "document": "{}"},
        {"description": "x", "document": 7},
        {"description": "x", "document": "{}", "abortConfig": {"criteriaList": [{}]}},
        {"description": "x", "document": "{}", "presignedUrlConfig": {"expiresInSec": "60"}},
        {"description": "x", "document": "{}", "presignedUrlConfig": []},
        *({"description": "x", "document": document} for document in BAD_DOCUMENTS),
    ]  # fmt: skip
    job_bodies: list[bytes | dict[str, Any]] = [
        {**target, "jobTemplateArn": 5},
        {**target, "jobTemplateArn": template_arn, "documentParameters": {"version": 1}},
        {**target, "jobTemplateArn": template_arn, "documentParameters": {"bad key!": "v", "version": "1"}},
        {**target, "jobTemplateArn": template_arn, "documentParameters": {"version": "\u0000"}},
        {**target, "jobTemplateArn": template_arn, "documentParameters": {"version": "v" * 40_000}},
        {**target, "jobTemplateArn": template_arn, "documentParameters": []},
        {**target, "jobTemplateArn": template_arn, "documentParameters": {"version": "1"}, "presignedUrlConfig": 1},
        *({**target, "document": document} for document in BAD_DOCUMENTS),
    ]
    for path, bodies in (("/iot/job-templates/t3", template_bodies), ("/iot/jobs/j3", job_bodies)):
        for body in bodies:
            request = urllib.request.Request(  # noqa: S310
                server + path,
                data=body if isinstance(body, bytes) else json.dumps(body).encode(),
                method="PUT",
                headers={"authorization": f"Bearer {jwt}", "content-type": "application/json"},
            )
            with pytest.raises(urllib.error.HTTPError) as caught:
                urllib.request.urlopen(request)  # noqa: S310
            assert caught.value.code == 400, (path, str(body)[:200])
            assert caught.value.headers["x-amzn-ErrorType"] == "InvalidRequestException"
    raises(iot, "ResourceNotFoundException", lambda: iot.describe_job_template(jobTemplateId="t3"))
    raises(iot, "ResourceNotFoundException", lambda: iot.describe_job(jobId="j3"))


def test_a_job_from_a_template_fills_its_parameters_and_a_device_gets_a_presigned_url(
    server: str, tenant: str, things: dict[str, str]
) -> None:
    iot = control_plane(server, tenant)
    template_arn = firmware_template(iot)["jobTemplateArn"]
    created = iot.create_job(
        jobId="fw-21",
        targets=[f"{ARN}:thing/thing-1"],
        jobTemplateArn=template_arn,
        documentParameters={"version": "2.1"},
    )
    assert created["jobArn"].endswith(":job/fw-21")

    document = json.loads(iot.get_job_document(jobId="fw-21")["document"])  # the operator sees the placeholder
    assert document == {
        "operation": "firmware",
        "version": "2.1",
        "url": "${aws:iot:s3-presigned-url:https://s3.amazonaws.com/firmware/fw-2.1.bin}",
    }
    job = iot.describe_job(jobId="fw-21")["job"]
    assert job["jobTemplateArn"] == template_arn
    assert job["presignedUrlConfig"] == {"roleArn": ROLE, "expiresInSec": 900}
    assert job["timeoutConfig"] == {"inProgressTimeoutInMinutes": 30}  # the template's
    assert job["description"] == "firmware, by version"
    assert "documentParameters" not in job  # not kept: the document holds their values

    device = data_plane(server, things["thing-1"])
    described = device.describe_job_execution(thingName="thing-1", jobId="fw-21")["execution"]
    assert_presigned(json.loads(described["jobDocument"])["url"], "/firmware/fw-2.1.bin", expires=900)
    started = device.start_next_pending_job_execution(thingName="thing-1")["execution"]
    assert started["jobId"] == "fw-21"
    assert json.loads(started["jobDocument"])["version"] == "2.1"
    assert_presigned(json.loads(started["jobDocument"])["url"], "/firmware/fw-2.1.bin", expires=900)

    # what the body gives overrides the template: another document, its own presigned-URL config
    iot.create_job(
        jobId="fw-22",
        targets=[f"{ARN}:thing/thing-2"],
        jobTemplateArn=template_arn,
        documentParameters={"version": "2.2"},
        presignedUrlConfig={"expiresInSec": 120},
        description="for thing-2",
    )
    job = iot.describe_job(jobId="fw-22")["job"]
    assert job["presignedUrlConfig"] == {"expiresInSec": 120} and job["description"] == "for thing-2"
    second = data_plane(server, things["thing-2"])
    execution = second.start_next_pending_job_execution(thingName="thing-2")["execution"]
    assert_presigned(json.loads(execution["jobDocument"])["url"], "/firmware/fw-2.2.bin", expires=120)
    iot.create_job(
        jobId="own-document",
        targets=[f"{ARN}:thing/thing-2"],
        jobTemplateArn=template_arn,
        document=json.dumps({"operation": "reboot"}),
    )
    assert json.loads(iot.get_job_document(jobId="own-document")["document"]) == {"operation": "reboot"}

    # a job keeps its copy: the template may go
    iot.delete_job_template(jobTemplateId="fw-template")
    assert json.loads(iot.get_job_document(jobId="fw-21")["document"])["version"] == "2.1"
    assert iot.describe_job(jobId="fw-21")["job"]["jobTemplateArn"] == template_arn
    raises(
        iot,
        "ResourceNotFoundException",
        lambda: iot.create_job(
            jobId="fw-23", targets=[f"{ARN}:thing/thing-1"], jobTemplateArn=template_arn, documentParameters={}
        ),
    )


def assert_presigned(url: str, path: str, expires: int) -> None:
    assert url.startswith(f"{S3_ENDPOINT}{path}?"), url
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Expires"] == [str(expires)]
    assert len(query["X-Amz-Signature"][0]) == 64
    assert query["X-Amz-Credential"][0].startswith("testing/")


def test_parameters_that_do_not_fit_create_nothing(server: str, tenant: str, things: dict[str, str]) -> None:
    iot = control_plane(server, tenant)
    template_arn = firmware_template(iot)["jobTemplateArn"]
    target = [f"{ARN}:thing/thing-1"]
    for parameters in ({}, {"version": "1", "color": "red"}, {"colour": "red"}, {"version": "bad\u0007value"}):
        raises(
            iot,
            "InvalidRequestException",
            lambda: iot.create_job(
                jobId="p1",
                targets=target,
                jobTemplateArn=template_arn,
                documentParameters=parameters,  # noqa: B023
            ),
        )
    raises(
        iot, "InvalidRequestException", lambda: iot.create_job(jobId="p1", targets=target, jobTemplateArn=template_arn)
    )
    raises(  # a document of its own without parameters takes none
        iot,
        "InvalidRequestException",
        lambda: iot.create_job(jobId="p1", targets=target, document="{}", documentParameters={"version": "1"}),
    )
    for malformed in ("fw-template", f"{ARN}:job/fw-template", f"{ARN}:jobtemplate/a.b", f"{ARN}:jobtemplate/"):
        raises(
            iot,
            "InvalidRequestException",
            lambda: iot.create_job(jobId="p1", targets=target, jobTemplateArn=malformed),  # noqa: B023
        )
    raises(
        iot,
        "ResourceNotFoundException",
        lambda: iot.create_job(jobId="p1", targets=target, jobTemplateArn=f"{ARN}:jobtemplate/ghost"),
    )
    raises(iot, "ResourceNotFoundException", lambda: iot.describe_job(jobId="p1"))
    assert iot.list_jobs()["jobs"] == []
    assert data_plane(server, things["thing-1"]).get_pending_job_executions(thingName="thing-1")["queuedJobs"] == []


def test_another_tenant_can_neither_see_nor_use_the_template(
    server: str, env: dict[str, str], tenant: str, other_tenant: str, things: dict[str, str]
) -> None:
    mine = control_plane(server, tenant)
    template_arn = firmware_template(mine)["jobTemplateArn"]
    theirs = control_plane(server, other_tenant)
    db = Database(lambda refresh: env["DATABASE_URL"])
    devices.register(db, other_tenant, ["thing-1"])  # the same name, their own device
    db.close()
    raises(theirs, "ResourceNotFoundException", lambda: theirs.describe_job_template(jobTemplateId="fw-template"))
    raises(theirs, "ResourceNotFoundException", lambda: theirs.delete_job_template(jobTemplateId="fw-template"))
    assert theirs.list_job_templates()["jobTemplates"] == []
    raises(
        theirs,
        "ResourceNotFoundException",
        lambda: theirs.create_job(
            jobId="steal",
            targets=[f"{ARN}:thing/thing-1"],
            jobTemplateArn=template_arn,
            documentParameters={"version": "1"},
        ),
    )
    raises(theirs, "ResourceNotFoundException", lambda: theirs.describe_job(jobId="steal"))
    firmware_template(theirs)  # the same id, their own template
    assert json.loads(mine.describe_job_template(jobTemplateId="fw-template")["document"]) == json.loads(DOCUMENT)
