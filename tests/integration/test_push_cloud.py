"""Push in the cloud, against moto: the push function drains the outbox into AWS IoT Core's iot-data
Publish (IOT_DATA_ENDPOINT), AWS IoT Jobs' notify-next and notify for each device; a broker that
refuses leaves the outbox for the next run; and a commit's wake is an asynchronous invocation of the
push function (PUSH_FUNCTION_NAME) that never fails its caller."""

from __future__ import annotations

import importlib
import io
import json
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import ANY, Stubber
from moto import mock_aws
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.iotdata.models import iotdata_backends

from jobs_core.aws import notify
from jobs_core.domain import notifications
from jobs_core.settings import settings
from jobs_core.store.db import Database
from jobs_local import template
from jobs_local.lambda_context import LocalContext
from tests.factories import Admin, CreateJob, Register
from tests.helpers import EVENTS

REGION = "us-east-1"
ENDPOINT = f"data-ats.iot.{REGION}.amazonaws.com"  # an iot:Data-ATS host, one moto answers for
PUSH_FUNCTION = "iot-jobs-push-notify"  # the template's ${AWS::StackName}-push-notify, for a stack iot-jobs
PUSH_ENV = ("IOT_DATA_ENDPOINT", "PUSH_FUNCTION_NAME", "PUSH_TOPIC_PREFIX", "MQTT_URL")


@pytest.fixture(autouse=True)
def _container(db: Database) -> None:
    """The handlers' database: the test database (the db fixture installs it)."""


@contextmanager
def cloud(**env: str) -> Iterator[None]:
    """moto's AWS, the settings read with `env` for push's variables (the others unset), a new
    publisher and Lambda client for the container, and the cloud's wake (no local waker); all as
    they were afterwards."""
    previous = notifications.set_waker(None)
    try:
        with pytest.MonkeyPatch.context() as patch:
            for key in PUSH_ENV:
                patch.delenv(key, raising=False)
            for key, value in {
                "AWS_DEFAULT_REGION": REGION,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                **env,
            }.items():
                patch.setenv(key, value)
            patch.setattr(notify, "_publisher", None)
            patch.setattr(notifications, "_lambda_client", None)
            patch.setattr(notifications, "_quiet_until", [0.0])
            settings.cache_clear()
            with mock_aws(config={"lambda": {"use_docker": False}}):
                try:
                    yield
                finally:
                    if notify._publisher is not None:
                        notify._publisher.close()
    finally:
        notifications.set_waker(previous)
        settings.cache_clear()


def push_notify(event_file: str = "push_notify") -> dict[str, Any]:
    """The push function as the schedule invokes it: the template's handler, its event file."""
    module_name, function = template.functions()["PushNotifyFunction"]["Properties"]["Handler"].rsplit(".", 1)
    handler: Callable[[dict[str, Any], Any], dict[str, Any]] = getattr(importlib.import_module(module_name), function)
    event = json.loads((EVENTS / f"{event_file}.json").read_text())
    return handler(event, LocalContext(function_name="PushNotifyFunction"))


def published(tenant: str) -> dict[str, Any]:
    """What moto's IoT Core took for the tenant's devices: {topic: payload}, the last of each."""
    backend = iotdata_backends[DEFAULT_ACCOUNT_ID][REGION]
    return {topic: json.loads(payload) for topic, payload in backend.published_payloads if f"/{tenant}/" in topic}


def outbox(admin: Admin, tenant: str) -> list[str]:
    rows = admin.execute("SELECT device_id FROM push_outbox WHERE tenant_id = %s ORDER BY id", [tenant]).fetchall()
    return [row["device_id"] for row in rows]


def test_the_push_function_tells_each_device_its_next_execution_and_its_lists_through_iot_core(
    admin: Admin, tenant: str, register: Register, create_job: CreateJob
) -> None:
    register(tenant, 3)
    create_job(tenant, job_id="fw", document_params={"version": "2.0"})
    assert sorted(outbox(admin, tenant)) == ["dev-0000", "dev-0001", "dev-0002"]
    sent: list[Any] = []
    with cloud(IOT_DATA_ENDPOINT=ENDPOINT):
        publisher = notify.publisher()  # the container's, which the handler will use
        assert isinstance(publisher, notify.IotDataPublisher)
        publisher._client.meta.events.register(
            "before-send.iot-data.Publish", lambda request, **_: sent.append(request)
        )
        result = push_notify()
        told = published(tenant)
    assert result["published"] >= 3  # and whatever other tests left in the outbox
    assert outbox(admin, tenant) == []
    assert sorted(told) == sorted(
        f"iotjobs/{tenant}/things/{device}/jobs/{kind}"
        for device in ("dev-0000", "dev-0001", "dev-0002")
        for kind in ("notify-next", "notify")
    )
    for device in ("dev-0000", "dev-0001", "dev-0002"):
        following = told[f"iotjobs/{tenant}/things/{device}/jobs/notify-next"]
        assert isinstance(following["timestamp"], int)
        execution = following["execution"]
        assert (execution["jobId"], execution["thingName"], execution["status"]) == ("fw", device, "QUEUED")
        assert execution["jobDocument"] == {"operation": "firmware", "version": "2.0"}  # an object, as AWS sends it
        lists = told[f"iotjobs/{tenant}/things/{device}/jobs/notify"]
        assert [job["jobId"] for job in lists["jobs"]["QUEUED"]] == ["fw"] and lists["jobs"]["IN_PROGRESS"] == []
    mine = [request for request in sent if f"%2F{tenant}%2F" in request.url or f"/{tenant}/" in request.url]
    assert len(mine) == 6
    assert all(parse_qs(urlsplit(request.url).query)["qos"] == ["1"] for request in mine)
    assert all(urlsplit(request.url).hostname == ENDPOINT for request in mine)


def test_the_topics_follow_the_prefix_the_stack_was_given(
    tenant: str, register: Register, create_job: CreateJob
) -> None:
    register(tenant, 1)
    create_job(tenant, job_id="fw")
    with cloud(IOT_DATA_ENDPOINT=ENDPOINT, PUSH_TOPIC_PREFIX="fleet-a"):
        push_notify()
        told = published(tenant)
    assert sorted(told) == [
        f"fleet-a/{tenant}/things/dev-0000/jobs/notify",
        f"fleet-a/{tenant}/things/dev-0000/jobs/notify-next",
    ]


def test_what_iot_core_refuses_stays_in_the_outbox_for_the_next_run(
    admin: Admin, tenant: str, register: Register, create_job: CreateJob
) -> None:
    register(tenant, 2)
    create_job(tenant, job_id="fw")

    def refuse(**kwargs: Any) -> None:
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "Publish")

    with cloud(IOT_DATA_ENDPOINT=ENDPOINT):
        publisher = notify.publisher()
        assert isinstance(publisher, notify.IotDataPublisher)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(publisher._client, "publish", refuse)
            assert push_notify() == {"published": 0, "failed": True}
        assert sorted(outbox(admin, tenant)) == ["dev-0000", "dev-0001"]
        assert published(tenant) == {}
        assert push_notify()["published"] >= 2  # IoT Core back: the next run tells them
        assert len(published(tenant)) == 4
    assert outbox(admin, tenant) == []


def test_without_an_endpoint_push_is_off_nothing_is_woken_and_the_outbox_does_not_grow(
    admin: Admin, tenant: str, register: Register, create_job: CreateJob
) -> None:
    register(tenant, 2)
    sent: list[Any] = []
    with cloud():
        notifications._lambda().meta.events.register(
            "before-send.lambda.Invoke", lambda request, **_: sent.append(request)
        )
        create_job(tenant, job_id="fw")
        answer = push_notify()
        assert answer["published"] == 0 and answer["dropped"] >= 2  # dropped: nobody to tell
        notifications.wake()
    assert sent == []
    assert outbox(admin, tenant) == []


def push_function() -> None:
    """The push function in moto's Lambda (its code never runs: moto's Lambda without Docker)."""
    role = boto3.client("iam").create_role(
        RoleName="push-notify",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
                ],
            }
        ),
    )["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("push_notify.py", "def lambda_handler(event, context):\n    return {}\n")
    boto3.client("lambda").create_function(
        FunctionName=PUSH_FUNCTION,
        Runtime="python3.13",
        Role=role,
        Handler="push_notify.lambda_handler",
        Code={"ZipFile": code.getvalue()},
    )


def test_a_commit_that_made_work_due_wakes_the_push_function_asynchronously(
    tenant: str, register: Register, create_job: CreateJob
) -> None:
    register(tenant, 2)
    sent: list[Any] = []
    answers: list[dict[str, Any]] = []
    with cloud(PUSH_FUNCTION_NAME=PUSH_FUNCTION):
        push_function()
        client = notifications._lambda()
        client.meta.events.register("before-send.lambda.Invoke", lambda request, **_: sent.append(request))
        client.meta.events.register("after-call.lambda.Invoke", lambda parsed, **_: answers.append(parsed))
        create_job(tenant, job_id="fw")  # the operator's create: its commit queued work for two devices
    assert len(sent) == 1  # one wake for the commit, however many devices it concerned
    request = sent[0]
    assert urlsplit(request.url).path == f"/2015-03-31/functions/{PUSH_FUNCTION}/invocations"
    invocation_type = request.headers["X-Amz-Invocation-Type"]
    assert (invocation_type.decode() if isinstance(invocation_type, bytes) else invocation_type) == "Event"
    assert json.loads(request.body) == {"wake": True}
    assert answers[0]["StatusCode"] == 202  # accepted, not run: the caller does not wait for the drain


def test_a_wake_that_lambda_refuses_does_not_fail_the_caller() -> None:
    with cloud(PUSH_FUNCTION_NAME=PUSH_FUNCTION):
        client = notifications._lambda()
        with Stubber(client) as stub:
            stub.add_client_error(
                "invoke",
                service_error_code="TooManyRequestsException",
                http_status_code=429,
                expected_params={"FunctionName": PUSH_FUNCTION, "InvocationType": "Event", "Payload": ANY},
            )
            notifications.wake()  # logged, not raised: the schedule drains what this wake would have
            stub.assert_no_pending_responses()
            notifications.wake()  # and for a minute no call pays for another try (the stub has none to give)
