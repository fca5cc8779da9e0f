"""Job templates, document parameters and presigned URLs through the native handlers, on PostgreSQL."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from jobs_core.aws import notify
from jobs_core.domain import notifications, presign, templates
from jobs_core.domain.templates import TemplateCreate
from jobs_core.errors import Conflict
from jobs_core.settings import settings
from jobs_core.store.db import Database
from tests.factories import Admin, Register
from tests.helpers import invoke, operator_claims, signing_for

PLACEHOLDER = "${aws:iot:s3-presigned-url:https://s3.amazonaws.com/firmware/sensor/fw-${aws:iot:parameter:version}.bin}"
TEMPLATE = {
    "template_id": "sensor-firmware",
    "document_type": "firmware",
    "document_params": {"version": "${aws:iot:parameter:version}", "url": PLACEHOLDER, "notes": "plain"},
    "description": "the sensor's firmware",
    "timeout_minutes": 30,
    "retry": [{"failure_type": "FAILED", "number_of_retries": 2}],
    "presigned_url_config": {"expires_in_sec": 600},
}
# a parameter 64 times, filled with 512 characters: over the 32 KiB a document may have
OVER_THE_LIMIT = {
    "document_parameters": {"version": "x" * 512},
    "document_params": {"v": "${aws:iot:parameter:version}" * 64},
}


def as_operator(tenant: str, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    return invoke(method, path, claims=operator_claims(tenant), **kwargs)


@pytest.fixture(autouse=True)
def signing(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Sign for a local S3 with a known key, as `make run` does."""
    with signing_for(monkeypatch, "http://127.0.0.1:4566", "AKIDLOCAL", "secret"):
        yield


def template(tenant: str, **changes: Any) -> dict[str, Any]:
    status, body = as_operator(tenant, "POST", "/customer/job-templates", body={**TEMPLATE, **changes})
    assert status == 201, body
    created: dict[str, Any] = body
    return created


def job(tenant: str, **fields: Any) -> tuple[int, Any]:
    body = {"template_id": "sensor-firmware", "target_all": True, **fields}
    return as_operator(tenant, "POST", "/customer/jobs", body=body)


def signed(url: str) -> dict[str, str]:
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == "http://127.0.0.1:4566"
    return {"path": parts.path, **dict(parse_qsl(parts.query))}


class TestTemplates:
    def test_create_describe_list_delete(self, tenant: str) -> None:
        created = template(tenant)
        assert created["parameters"] == ["version"] and created["presigned_url_config"] == {"expires_in_sec": 600}
        status, found = as_operator(tenant, "GET", "/customer/job-templates/sensor-firmware")
        assert status == 200 and found == created
        template(tenant, template_id="other")
        status, page = as_operator(tenant, "GET", "/customer/job-templates", query="limit=1")
        assert status == 200 and [t["template_id"] for t in page] == ["other"]
        status, gone = as_operator(tenant, "DELETE", "/customer/job-templates/other")
        assert status == 200 and gone == {"template_id": "other"}
        assert as_operator(tenant, "GET", "/customer/job-templates/other")[0] == 404
        assert as_operator(tenant, "DELETE", "/customer/job-templates/other")[0] == 404

    def test_a_duplicate_is_409_and_changes_nothing(self, tenant: str) -> None:
        template(tenant)
        status, body = as_operator(tenant, "POST", "/customer/job-templates", body={**TEMPLATE, "description": "new"})
        assert status == 409 and "already exists" in body["message"]
        assert (
            as_operator(tenant, "GET", "/customer/job-templates/sensor-firmware")[1]["description"]
            == TEMPLATE["description"]
        )

    @pytest.mark.parametrize(
        ("changes", "status"),
        [
            ({"template_id": "no spaces"}, 422),
            ({"template_id": "x" * 65}, 422),
            ({"presigned_url_config": {"expires_in_sec": 59}}, 422),
            ({"presigned_url_config": {"expires_in_sec": 3601}}, 422),
            ({"document_params": {"url": "${aws:iot:s3-presigned-url:https://example.com/firmware/x.bin}"}}, 422),
            ({"document_params": {"url": "${aws:iot:s3-presigned-url:https://s3.amazonaws.com/firmware}"}}, 422),
            ({"document_params": {"url": "${aws:iot:s3-presigned-url:http://s3.amazonaws.com/firmware/x}"}}, 422),
            ({"document_params": {f"p{i}": f"${{aws:iot:parameter:p{i}}}" for i in range(11)}}, 422),
            ({"document_params": {"p": "${aws:iot:parameter:no spaces}"}}, 422),
            ({"document_type": None}, 422),
        ],
    )
    def test_bad_input_is_4xx_and_creates_nothing(self, tenant: str, changes: dict[str, Any], status: int) -> None:
        got, body = as_operator(tenant, "POST", "/customer/job-templates", body={**TEMPLATE, **changes})
        assert got == status and body["message"]
        assert as_operator(tenant, "GET", "/customer/job-templates")[1] == []

    def test_a_page_stops_short_of_a_mebibyte(self, db: Database, tenant: str) -> None:
        big = {"blob": "x" * 30_000}
        for i in range(40):
            template(tenant, template_id=f"t{i:02d}", document_params=big, presigned_url_config=None)
        status, first = as_operator(tenant, "GET", "/customer/job-templates", query="limit=250")
        assert status == 200 and 20 < len(first) < 40 and len(json.dumps(first)) < 1024 * 1024
        page = templates.list_templates(db, tenant, 250, None)
        assert [t.template_id for t in page.templates] == [t["template_id"] for t in first] and page.next_cursor
        rest = templates.list_templates(db, tenant, 250, page.next_cursor)
        assert len(first) + len(rest.templates) == 40 and rest.next_cursor is None

    def test_at_most_ten_presigned_urls_a_document(self, tenant: str) -> None:
        urls = {f"u{i}": f"${{aws:iot:s3-presigned-url:https://s3.amazonaws.com/firmware/{i}}}" for i in range(11)}
        status, body = as_operator(
            tenant, "POST", "/customer/job-templates", body={**TEMPLATE, "document_params": urls}
        )
        assert status == 422 and "at most 10 presigned" in body["message"]

    def test_another_tenant_sees_nothing(self, tenant: str, other_tenant: str, register: Register) -> None:
        template(tenant)
        register(other_tenant, 1)
        assert as_operator(other_tenant, "GET", "/customer/job-templates/sensor-firmware")[0] == 404
        assert as_operator(other_tenant, "GET", "/customer/job-templates")[1] == []
        assert as_operator(other_tenant, "DELETE", "/customer/job-templates/sensor-firmware")[0] == 404
        assert job(other_tenant, document_parameters={"version": "2.1"})[0] == 404


class TestJobsFromTemplates:
    def test_a_job_takes_the_templates_settings_and_fills_its_parameters(
        self, tenant: str, register: Register, admin: Admin
    ) -> None:
        register(tenant, 2)
        template(tenant)
        status, created = job(tenant, job_id="fw-2-1", document_parameters={"version": "2.1"})
        assert status == 201 and created["execution_count"] == 2
        status, detail = as_operator(tenant, "GET", "/customer/jobs/fw-2-1")
        assert detail["template_id"] == "sensor-firmware" and detail["document_type"] == "firmware"
        assert detail["timeout_minutes"] == 30 and detail["description"] == TEMPLATE["description"]
        assert detail["retry"] == TEMPLATE["retry"] and detail["presigned_url_config"] == {"expires_in_sec": 600}
        assert detail["document_params"] == {
            "version": "2.1",
            "url": "${aws:iot:s3-presigned-url:https://s3.amazonaws.com/firmware/sensor/fw-2.1.bin}",
            "notes": "plain",
        }  # the operator sees the placeholder
        row = admin.execute("SELECT presign_ttl FROM jobs WHERE tenant_id = %s", [tenant]).fetchone()
        assert row == {"presign_ttl": 600}

    def test_what_the_body_gives_overrides_the_template(self, tenant: str, register: Register) -> None:
        register(tenant, 1)
        template(tenant)
        status, _ = job(
            tenant,
            job_id="fw-2-2",
            document_parameters={"version": "2.2"},
            timeout_minutes=5,
            description="urgent",
            presigned_url_config={"expires_in_sec": 120},
        )
        assert status == 201
        detail = as_operator(tenant, "GET", "/customer/jobs/fw-2-2")[1]
        assert (detail["timeout_minutes"], detail["description"]) == (5, "urgent")
        assert detail["presigned_url_config"] == {"expires_in_sec": 120} and detail["retry"] == TEMPLATE["retry"]

    def test_null_in_the_body_sets_a_setting_to_none_but_a_job_keeps_a_type(
        self, tenant: str, register: Register
    ) -> None:
        register(tenant, 1)
        template(tenant)
        body = {"job_id": "n", "document_type": None, "timeout_minutes": None, "document_parameters": {"version": "2"}}
        assert job(tenant, **body)[0] == 201
        detail = as_operator(tenant, "GET", "/customer/jobs/n")[1]
        assert detail["document_type"] == "firmware" and detail["timeout_minutes"] is None
        assert detail["retry"] == TEMPLATE["retry"]

    def test_deleting_the_template_leaves_its_jobs(self, tenant: str, register: Register) -> None:
        register(tenant, 1)
        template(tenant)
        assert job(tenant, job_id="fw-2-3", document_parameters={"version": "2.3"})[0] == 201
        assert as_operator(tenant, "DELETE", "/customer/job-templates/sensor-firmware")[0] == 200
        detail = as_operator(tenant, "GET", "/customer/jobs/fw-2-3")[1]
        assert detail["template_id"] == "sensor-firmware" and detail["document_params"]["version"] == "2.3"

    @pytest.mark.parametrize(
        ("fields", "status", "says"),
        [
            ({}, 422, "missing version"),
            ({"document_parameters": {"version": "2.1", "colour": "red"}}, 422, "no parameter colour"),
            ({"document_parameters": {"version": ""}}, 422, "document_parameters"),
            ({"document_parameters": {"version": "a\nb"}}, 422, "document_parameters"),
            ({"document_parameters": {f"p{i}": "x" for i in range(11)}}, 422, "document_parameters"),
            (OVER_THE_LIMIT, 422, "bytes"),
            ({"template_id": "nope", "document_parameters": {"version": "2.1"}}, 404, "not found"),
            ({"template_id": "bad id"}, 422, "template_id"),
            ({"document_parameters": {"version": "/../x"}, "document_params": {"u": "${aws:iot:s3-presigned-url:https://s3.amazonaws.com/${aws:iot:parameter:version}}"}},
             422, "S3 object"),
        ],
    )  # fmt: skip
    def test_parameters_that_do_not_fit_are_4xx_and_create_nothing(
        self, tenant: str, register: Register, admin: Admin, fields: dict[str, Any], status: int, says: str
    ) -> None:
        register(tenant, 1)
        template(tenant)
        got, body = job(tenant, **fields)
        assert got == status and says in json.dumps(body), body
        assert admin.execute("SELECT count(*) AS n FROM jobs WHERE tenant_id = %s", [tenant]).fetchone() == {"n": 0}

    @pytest.mark.parametrize(
        "params",
        [
            {"url": "${aws:iot:s3-presigned-url:https://s3.amazonaws.com/firmware/a.bin"},  # not closed
            {"url": "${aws:iot:s3-presigned-url-v3:https://s3.amazonaws.com/firmware/a.bin}"},
            {"x": "${aws:iot:thing-name}"},
        ],
    )
    def test_an_unknown_or_unclosed_placeholder_is_422(
        self, tenant: str, register: Register, params: dict[str, str]
    ) -> None:
        register(tenant, 1)
        body = {"document_type": "firmware", "document_params": params, "target_all": True}
        status, answer = as_operator(tenant, "POST", "/customer/jobs", body=body)
        assert status == 422 and repr(next(iter(params.values())))[:60] in answer["message"]
        status, answer = as_operator(
            tenant, "POST", "/customer/job-templates", body={**TEMPLATE, "document_params": params}
        )
        assert status == 422 and "closed by }" in answer["message"]

    def test_a_value_cannot_end_the_placeholder_it_stands_in(self, tenant: str, register: Register) -> None:
        register(tenant, 1)
        template(tenant)
        status, answer = job(tenant, document_parameters={"version": '2.1"}'})
        assert status == 422 and "document_parameters" in json.dumps(answer)

    def test_with_keys_per_tenant_a_url_names_the_tenants_own_objects(
        self, tenant: str, register: Register, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("S3_TENANT_PREFIX", "true")
        settings.cache_clear()
        register(tenant, 1)
        template(tenant)  # firmware/sensor/...: another prefix than the tenant's
        status, answer = job(tenant, document_parameters={"version": "2.1"})
        assert status == 422 and f"BUCKET/{tenant}/" in answer["message"]
        own = f"${{aws:iot:s3-presigned-url:https://s3.amazonaws.com/firmware/{tenant}/fw.bin}}"
        status, _ = as_operator(
            tenant,
            "POST",
            "/customer/jobs",
            body={"document_type": "f", "document_params": {"url": own}, "target_all": True},
        )
        assert status == 201

    def test_a_plain_job_may_use_parameters_and_placeholders_too(self, tenant: str, register: Register) -> None:
        tokens = register(tenant, 1)
        status, _ = as_operator(
            tenant,
            "POST",
            "/customer/jobs",
            body={
                "job_id": "plain",
                "document_type": "firmware",
                "document_params": {"url": "${aws:iot:s3-presigned-url-v2:https://s3.eu-west-1.amazonaws.com/b-1/k}"},
                "target_all": True,
            },
        )
        assert status == 201
        pending = invoke("GET", "/device/v1/jobs/pending", token=tokens["dev-0000"])[1]
        url = signed(pending["jobs"][0]["document"]["params"]["url"])
        assert url["path"] == "/b-1/k" and url["X-Amz-Expires"] == "3600"  # the default
        assert "/eu-west-1/s3/aws4_request" in url["X-Amz-Credential"]  # the -v2 form's region


class TestDevicesReadSignedUrls:
    def test_every_device_read_gets_a_fresh_url_and_the_operator_the_placeholder(
        self, tenant: str, register: Register
    ) -> None:
        tokens = register(tenant, 1)
        token = tokens["dev-0000"]
        template(tenant)
        assert job(tenant, job_id="fw-2-1", document_parameters={"version": "2.1"})[0] == 201

        pending = invoke("GET", "/device/v1/jobs/pending", token=token)[1]["jobs"][0]["document"]
        described = invoke("GET", "/device/v1/jobs/fw-2-1/execution", token=token)[1]["document"]
        started = invoke("PUT", "/device/v1/jobs/next", token=token, body={})[1]["execution"]["document"]
        for document in (pending, described, started):
            assert document["params"]["version"] == "2.1" and document["params"]["notes"] == "plain"
            url = signed(document["params"]["url"])
            assert url["path"] == "/firmware/sensor/fw-2.1.bin" and url["X-Amz-Expires"] == "600"
            assert url["X-Amz-Credential"].startswith("AKIDLOCAL/") and len(url["X-Amz-Signature"]) == 64
            assert "presign_ttl" not in document
        assert "${aws:iot" in json.dumps(as_operator(tenant, "GET", "/customer/jobs/fw-2-1")[1]["document_params"])

    def test_push_notify_next_carries_a_signed_url(self, db: Any, tenant: str, register: Register) -> None:
        register(tenant, 1)
        template(tenant)
        assert job(tenant, job_id="fw-2-1", document_parameters={"version": "2.1"})[0] == 201
        notices: list[notifications.Notice] = []
        notifications.drain(db, notices.extend)
        mine = [n for n in notices if n.device.tenant_id == tenant]
        assert mine, "no notice for the device"
        topic, payload = notify.messages(mine[-1])[0]
        assert topic.endswith(f"/{tenant}/things/dev-0000/jobs/notify-next")
        document = json.loads(payload)["execution"]["jobDocument"]
        assert signed(document["url"])["path"] == "/firmware/sensor/fw-2.1.bin"

    def test_without_credentials_the_device_gets_the_placeholder_not_an_error(
        self, tenant: str, register: Register, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        tokens = register(tenant, 1)
        template(tenant)
        assert job(tenant, document_parameters={"version": "2.1"})[0] == 201
        monkeypatch.setattr(presign, "_credentials", lambda: None)
        status, body = invoke("GET", "/device/v1/jobs/pending", token=tokens["dev-0000"])
        assert status == 200 and body["jobs"][0]["document"]["params"]["url"].startswith("${aws:iot:s3-presigned-url:")


def test_two_creates_of_one_template_at_once_give_one_template(database_url: str, tenant: str) -> None:
    """Eight connections create the same template at once: one is created, seven are told 409."""
    handles = [Database(lambda refresh: database_url) for _ in range(8)]
    start = threading.Barrier(len(handles))

    def create(db: Database) -> str:
        start.wait()
        try:
            templates.create(db, tenant, TemplateCreate.model_validate(TEMPLATE))
            return "created"
        except Conflict:
            return "conflict"
        finally:
            db.close()

    with ThreadPoolExecutor(len(handles)) as pool:
        outcomes = sorted(pool.map(create, handles))
    assert outcomes == ["conflict"] * 7 + ["created"]
    assert len(as_operator(tenant, "GET", "/customer/job-templates")[1]) == 1
