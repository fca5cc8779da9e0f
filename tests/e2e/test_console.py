"""The operator console in a real headless Chromium (Debian's chromium and chromium-driver, which
`make chromium` installs), against the local server over HTTP: sign in with a token, create a
job for a group, let devices finish through the device API and watch the bars, cancel, and see
that a document type made of markup stays text; register a device and use the token the page
shows, rotate and revoke it, make a group of devices, delete a device and see its execution
REMOVED; create a job template, see its settings, create a job from it with a parameter, delete
it. Screenshots go to the test's output directory."""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Any

import pytest
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.select import Select

from jobs_core.domain import groups
from jobs_core.store.db import Database
from jobs_local import devjwt
from tests.e2e.console_pages import (
    answer_confirm,
    bar_of,
    by_id,
    device,
    field,
    open_page,
    operator_api,
    pending,
    row_ids,
    shown_token,
    sign_in,
    wait_for,
)
from tests.e2e.test_e2e_http import http
from tests.factories import Register

XSS = "<img src=x onerror=alert(1)>"


def test_an_operator_watches_and_steers_a_rollout_in_the_console(
    browser: WebDriver, base_url: str, db: Database, tenant: str, register: Register, tmp_path: Path
) -> None:
    tokens = register(tenant, 4, prefix="cam")
    groups.add_to_group(db, tenant, "cameras", list(tokens))
    sign_in(browser, base_url, devjwt.mint(tenant, "alice"))

    # The page and its files carry a CSP without inline scripts.
    with urllib.request.urlopen(base_url + "/console") as response:  # noqa: S310
        policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy

    # A refused create shows the API's error beside the field.
    browser.get(base_url + "/console#/new")
    wait_for(lambda: browser.find_element(By.ID, "new").is_displayed(), "the create form")
    unlabelled = browser.execute_script(
        "return [...document.querySelectorAll('input, select, textarea')].filter(e => !e.labels.length).map(e => e.id)"
        " .concat([...document.querySelectorAll('button')].filter(b => !b.textContent.trim()).map(b => b.id))"
    )
    assert unlabelled == []  # every control has a label, every button a name (and they are all native controls)
    browser.find_element(By.CSS_SELECTOR, "input[name=target][value=group]").click()
    field(browser, "target").send_keys("cameras")
    browser.find_element(By.ID, "create").click()
    wait_for(lambda: browser.find_element(By.ID, "error-document_type").text, "the error beside the document type")
    assert field(browser, "document_type").get_attribute("aria-invalid") == "true"

    # Create it right: a job for the group, then its page.
    field(browser, "document_type").send_keys("firmware")
    field(browser, "document_params").clear()
    field(browser, "document_params").send_keys('{"version": "2.1.0"}')
    field(browser, "job_id").send_keys("fw-210")
    browser.find_element(By.ID, "f-continuous").click()  # cameras that join the group later get it too
    browser.find_element(By.ID, "create").click()
    wait_for(lambda: browser.find_element(By.ID, "job-title").text == "Job fw-210", "the new job's page")
    assert "2.1.0" in browser.find_element(By.ID, "job-document").text
    facts = browser.find_element(By.ID, "job-facts").text
    assert "group cameras (continuous)" in facts and "continuous: a device that joins" in facts

    # Devices work through the device API; the list's bar follows, refreshed on its own.
    cams = list(tokens.values())
    for token, outcome in zip(cams[:3], ("SUCCEEDED", "SUCCEEDED", "FAILED"), strict=True):
        assert device(base_url, token, "PUT", "/device/v1/jobs/fw-210/execution", {"status": "IN_PROGRESS"})[0] == 200
        assert device(base_url, token, "PUT", "/device/v1/jobs/fw-210/execution", {"status": outcome})[0] == 200
    browser.get(base_url + "/console#/jobs")
    wait_for(lambda: bar_of(browser, "fw-210").get("FAILED"), "the failed segment")
    bar = bar_of(browser, "fw-210")
    assert {status: count for status, (count, _) in bar.items()} == {"SUCCEEDED": 2, "FAILED": 1, "QUEUED": 1}
    assert bar["SUCCEEDED"][1] == pytest.approx(50, abs=2)
    assert bar["FAILED"][1] == pytest.approx(25, abs=2) and bar["QUEUED"][1] == pytest.approx(25, abs=2)
    assert device(base_url, cams[3], "PUT", "/device/v1/jobs/fw-210/execution", {"status": "IN_PROGRESS"})[0] == 200
    wait_for(lambda: bar_of(browser, "fw-210").get("IN_PROGRESS"), "the refresh to show the claim")
    browser.save_screenshot(str(tmp_path / "console-jobs.png"))

    # A document type made of markup is shown as text, and runs nothing.
    status, _ = http(
        base_url,
        "POST",
        "/customer/jobs",
        headers={"Authorization": "Bearer " + devjwt.mint(tenant, "alice")},
        body={"job_id": "xss", "document_type": XSS, "target_group_id": "cameras"},
    )
    assert status == 201
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, 'tr[data-job-id="xss"]'), "the job with markup")
    cell = browser.find_element(By.CSS_SELECTOR, 'tr[data-job-id="xss"] td:nth-child(2)')
    assert cell.text == XSS
    assert browser.find_elements(By.CSS_SELECTOR, "#jobs-rows img") == []
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018

    # Cancel one execution, then the job (force), each after a confirmation.
    browser.find_element(By.CSS_SELECTOR, 'tr[data-job-id="xss"] a').click()
    wait_for(lambda: browser.find_element(By.ID, "job-title").text == "Job xss", "the job's page")
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#executions-rows button"), "the executions")
    browser.find_elements(By.CSS_SELECTOR, "#executions-rows button")[0].click()
    browser.switch_to.alert.accept()
    wait_for(lambda: "REJECTED" in browser.find_element(By.ID, "executions-rows").text, "the canceled execution")
    browser.find_element(By.ID, "force-cancel-job").click()
    browser.switch_to.alert.accept()
    wait_for(lambda: "CANCELED" in browser.find_element(By.ID, "job-facts").text, "the canceled job")
    assert XSS in browser.find_element(By.ID, "job-document").text

    # The executions filter: the canceled job's REJECTED executions only.
    browser.find_element(By.ID, "executions-status").send_keys("REJECTED")
    wait_for(
        lambda: (
            {r.text.split()[1] for r in browser.find_elements(By.CSS_SELECTOR, "#executions-rows tr")} == {"REJECTED"}
        ),
        "the filtered executions",
    )
    browser.save_screenshot(str(tmp_path / "console-job.png"))

    # The token lives in this tab's session storage, never in the URL; signing out forgets it.
    assert browser.execute_script("return sessionStorage.length") == 1
    assert "eyJ" not in browser.current_url
    browser.find_element(By.ID, "sign-out").click()
    assert browser.execute_script("return sessionStorage.length") == 0
    assert browser.find_element(By.ID, "sign-in").is_displayed()


def test_an_operator_manages_the_fleet_in_the_console(
    browser: WebDriver, base_url: str, tenant: str, tmp_path: Path
) -> None:
    jwt = devjwt.mint(tenant, "alice")
    operator = operator_api(base_url, jwt)

    for device_id, model, site in [("cam-2", "s-200", "lobby"), ("gw-1", "g-10", "roof"), ("sensor-7", "t-3", "lab")]:
        assert (
            operator(
                "POST", "/customer/devices", {"device_id": device_id, "attributes": {"model": model, "site": site}}
            )[0]
            == 201
        )
    sign_in(browser, base_url, jwt)

    # Register a device through the page: what is refused shown beside its field, then the token, once.
    open_page(browser, base_url, "#/register", "register")
    by_id(browser, "reg-f-device_id").send_keys("not ok")
    by_id(browser, "reg-f-attributes").send_keys("model")
    by_id(browser, "register-device").click()
    wait_for(lambda: "name=value" in by_id(browser, "reg-error-attributes").text, "the attributes' error")
    by_id(browser, "reg-f-attributes").clear()
    by_id(browser, "reg-f-attributes").send_keys(f"model=s-200\nnote={XSS}")
    by_id(browser, "register-device").click()
    wait_for(lambda: by_id(browser, "reg-error-device_id").text, "the error beside the device id (the API's)")
    assert by_id(browser, "reg-f-device_id").get_attribute("aria-invalid") == "true"
    assert by_id(browser, "reg-error-attributes").text == ""
    by_id(browser, "reg-f-device_id").clear()
    by_id(browser, "reg-f-device_id").send_keys("cam-1")
    by_id(browser, "register-device").click()
    first = shown_token(browser)
    assert "will not be shown again" in by_id(browser, "secret").text
    assert pending(base_url, first) == 200  # the token read off the page works for the device
    by_id(browser, "secret-done").click()
    assert not by_id(browser, "secret").is_displayed() and first not in browser.page_source
    by_id(browser, "reg-f-device_id").send_keys("cam-1")  # again: 409, beside the id
    by_id(browser, "register-device").click()
    wait_for(lambda: "cam-1" in by_id(browser, "reg-error-device_id").text, "the conflict beside the device id")

    # The list and a device's page show the markup-looking attribute as text, and never a token.
    open_page(browser, base_url, "#/devices", "devices")
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, 'tr[data-device-id="cam-1"]'), "the new device listed")
    assert XSS in browser.find_element(By.CSS_SELECTOR, 'tr[data-device-id="cam-1"] td:nth-child(2)').text
    browser.save_screenshot(str(tmp_path / "console-devices.png"))
    browser.find_element(By.CSS_SELECTOR, 'tr[data-device-id="cam-1"] a').click()
    wait_for(lambda: "Token issued" in by_id(browser, "device-facts").text, "the device's page")
    assert by_id(browser, "device-title").text == "Device cam-1"
    assert [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#device-attributes td")] == [
        "model",
        "s-200",
        "note",
        XSS,
    ]
    assert browser.find_elements(By.CSS_SELECTOR, "main img") == []
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018
    assert first not in browser.page_source

    # Its attributes edited as lines: a line gone removes that attribute, a new one adds it.
    by_id(browser, "att-f-attributes").clear()
    by_id(browser, "att-f-attributes").send_keys("model=s-200\nsite=lab")
    by_id(browser, "save-attributes").click()
    wait_for(lambda: "Version\n2" in by_id(browser, "device-facts").text, "the saved attributes")
    assert [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#device-attributes td")] == [
        "model",
        "s-200",
        "site",
        "lab",
    ]

    # Rotate without an overlap: the old token is refused at once, the new one (shown once) works.
    by_id(browser, "rotate-token").click()
    assert "stops working now" in answer_confirm(browser)
    second = shown_token(browser)
    assert (pending(base_url, first), pending(base_url, second)) == (401, 200)
    # With 5 minutes of overlap, both work for a while; the page says until when.
    by_id(browser, "rot-f-previous_valid_minutes").clear()
    by_id(browser, "rot-f-previous_valid_minutes").send_keys("5")
    by_id(browser, "rotate-token").click()
    assert "5 minutes" in answer_confirm(browser)
    third = shown_token(browser, other_than=second)
    assert (pending(base_url, second), pending(base_url, third)) == (200, 200)
    wait_for(lambda: "Previous token valid until\n-" not in by_id(browser, "device-facts").text, "the overlap shown")
    assert second not in by_id(browser, "device").text and third not in by_id(browser, "device").text

    # Revoke: neither works, and the page says so.
    by_id(browser, "revoke-tokens").click()
    answer_confirm(browser)
    wait_for(lambda: "none (revoked)" in by_id(browser, "device-facts").text, "the revoked token")
    assert (pending(base_url, second), pending(base_url, third)) == (401, 401)
    assert not by_id(browser, "secret").is_displayed()

    # A group: refused beside the id, then created; members added by id, counted, one removed.
    open_page(browser, base_url, "#/groups", "groups")
    by_id(browser, "grp-f-group_id").send_keys("bad id")
    by_id(browser, "create-group").click()
    wait_for(lambda: by_id(browser, "grp-error-group_id").text, "the error beside the group id")
    by_id(browser, "grp-f-group_id").clear()
    by_id(browser, "grp-f-group_id").send_keys("lab")
    by_id(browser, "grp-f-description").send_keys("the lab bench")
    by_id(browser, "create-group").click()
    wait_for(
        lambda: by_id(browser, "group-title").text == "Group lab" and by_id(browser, "group").is_displayed(),
        "the group's page",
    )
    by_id(browser, "mem-f-device_id").send_keys("nope")
    by_id(browser, "add-member").click()
    wait_for(lambda: "nope" in by_id(browser, "mem-error-device_id").text, "the unknown device beside the field")
    by_id(browser, "mem-f-device_id").clear()
    by_id(browser, "mem-f-device_id").send_keys("cam-1")
    by_id(browser, "add-member").click()
    wait_for(lambda: by_id(browser, "group-facts").get_attribute("data-device-count") == "1", "one member")
    by_id(browser, "mem-f-device_id").send_keys("cam-1, cam-2")  # several at once: cam-1 is in already
    by_id(browser, "add-member").click()
    wait_for(lambda: by_id(browser, "group-facts").get_attribute("data-device-count") == "2", "two members")
    assert "1 device(s) added" in by_id(browser, "notice").text
    wait_for(lambda: row_ids(browser, "members-rows") == ["cam-1", "cam-2"], "both members listed")
    open_page(browser, base_url, "#/groups", "groups")
    count = 'tr[data-group-id="lab"] td:nth-child(3)'
    wait_for(lambda: browser.find_element(By.CSS_SELECTOR, count).text == "2", "the count in the groups list")
    browser.find_element(By.CSS_SELECTOR, 'tr[data-group-id="lab"] a').click()
    wait_for(lambda: row_ids(browser, "members-rows") == ["cam-1", "cam-2"], "the group's members")
    browser.find_element(By.CSS_SELECTOR, 'button[aria-label="Remove cam-2 from group lab"]').click()
    wait_for(lambda: row_ids(browser, "members-rows") == ["cam-1"], "cam-2 removed")
    assert by_id(browser, "group-facts").get_attribute("data-device-count") == "1"

    # The devices list, filtered by an attribute (a refused filter shown beside it), then by the group.
    open_page(browser, base_url, "#/devices", "devices")
    wait_for(lambda: row_ids(browser, "devices-rows") == ["cam-1", "cam-2", "gw-1", "sensor-7"], "every device")
    by_id(browser, "devices-f-attribute").send_keys("model")
    by_id(browser, "devices-apply").click()
    wait_for(lambda: by_id(browser, "devices-error-attribute").text, "the error beside the attribute filter")
    by_id(browser, "devices-f-attribute").send_keys(":s-200")
    by_id(browser, "devices-apply").click()
    wait_for(lambda: row_ids(browser, "devices-rows") == ["cam-1", "cam-2"], "the devices of that model")
    assert by_id(browser, "devices-error-attribute").text == ""
    by_id(browser, "devices-f-attribute").clear()
    wait_for(
        lambda: [o.text for o in Select(by_id(browser, "devices-f-group_id")).options] == ["any group", "lab"],
        "the groups",
    )
    Select(by_id(browser, "devices-f-group_id")).select_by_value("lab")
    wait_for(lambda: row_ids(browser, "devices-rows") == ["cam-1"], "the group's devices only")

    # Delete a device with a queued execution, after a confirmation: its execution is REMOVED.
    assert (
        operator(
            "POST", "/customer/jobs", {"job_id": "fw-rm", "document_type": "firmware", "target_device_id": "cam-2"}
        )[0]
        == 201
    )
    open_page(browser, base_url, "#/devices/cam-2", "device")
    wait_for(lambda: "Token issued" in by_id(browser, "device-facts").text, "cam-2's page")
    by_id(browser, "delete-device").click()
    answer_confirm(browser, accept=False)  # not this time: it stays
    assert operator("GET", "/customer/devices/cam-2")[0] == 200
    by_id(browser, "delete-device").click()
    assert "REMOVED" in answer_confirm(browser)
    wait_for(lambda: by_id(browser, "devices").is_displayed(), "the devices list")
    assert "1 unfinished execution(s) removed" in by_id(browser, "notice").text
    assert operator("GET", "/customer/devices/cam-2")[0] == 404
    open_page(browser, base_url, "#/jobs", "jobs")
    wait_for(lambda: bar_of(browser, "fw-rm").get("REMOVED"), "the removed segment")
    bar = bar_of(browser, "fw-rm")
    assert list(bar) == ["REMOVED"] and bar["REMOVED"][0] == 1 and bar["REMOVED"][1] == pytest.approx(100, abs=1)
    browser.find_element(By.CSS_SELECTOR, 'tr[data-job-id="fw-rm"] a').click()
    wait_for(lambda: by_id(browser, "job-title").text == "Job fw-rm", "the job's page")
    by_id(browser, "executions-status").send_keys("REMOVED")
    wait_for(lambda: "cam-2 REMOVED" in by_id(browser, "executions-rows").text, "the removed execution")

    by_id(browser, "sign-out").click()
    assert browser.execute_script("return sessionStorage.length") == 0


def test_an_operator_creates_a_job_from_a_template_in_the_console(
    browser: WebDriver, base_url: str, tenant: str, register: Register, tmp_path: Path
) -> None:
    jwt = devjwt.mint(tenant, "alice")
    operator = operator_api(base_url, jwt)

    register(tenant, 1, prefix="cam")
    document = {
        "version": "${aws:iot:parameter:version}",
        "file": "${aws:iot:s3-presigned-url:https://s3.amazonaws.com/firmware/cam-${aws:iot:parameter:version}.bin}",
    }
    template: dict[str, Any] = {"template_id": "cam-fw", "document_type": "firmware", "document_params": document}
    template |= {"description": XSS, "timeout_minutes": 30, "presigned_url_config": {"expires_in_sec": 600}}
    template |= {"retry": [{"failure_type": "FAILED", "number_of_retries": 2}]}
    assert operator("POST", "/customer/job-templates", template)[0] == 201
    sign_in(browser, base_url, jwt)

    # Its page: the settings, the parameters, the document with its placeholders as written; markup as text.
    open_page(browser, base_url, "#/templates", "templates")
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, 'tr[data-template-id="cam-fw"]'), "the template listed")
    browser.find_element(By.CSS_SELECTOR, 'tr[data-template-id="cam-fw"] a').click()
    wait_for(lambda: "Parameters\nversion" in by_id(browser, "template-facts").text, "the template's page")
    facts = by_id(browser, "template-facts").text
    for shown in ("Document type\nfirmware", "30 minutes", "2 on FAILED", "valid 600 seconds", f"Description\n{XSS}"):
        assert shown in facts
    assert document["file"] in by_id(browser, "template-document").text
    assert browser.find_elements(By.CSS_SELECTOR, "main img") == []
    browser.save_screenshot(str(tmp_path / "console-template.png"))

    # A job from it: the template's settings and an input per parameter; the one missing, the API's 422.
    by_id(browser, "template-use").click()
    wait_for(lambda: by_id(browser, "f-param-version").is_displayed(), "the parameter's input")
    assert browser.execute_script("return document.getElementById('f-param-version').labels.length") == 1
    assert Select(by_id(browser, "f-template_id")).first_selected_option.text == "cam-fw"
    assert "valid 600 seconds" in by_id(browser, "new-template-facts").text
    assert (
        by_id(browser, "document-optional").is_displayed()
        and field(browser, "document_params").get_property("value") == ""
    )
    browser.save_screenshot(str(tmp_path / "console-new-from-template.png"))
    field(browser, "target").send_keys("cam-0000")
    field(browser, "job_id").send_keys("cam-fw-301")
    by_id(browser, "create").click()
    wait_for(lambda: "missing version" in by_id(browser, "error-document_parameters").text, "the missing parameter")
    by_id(browser, "f-param-version").send_keys("3.0.1")
    by_id(browser, "create").click()
    wait_for(lambda: by_id(browser, "job-title").text == "Job cam-fw-301", "the new job's page")
    wait_for(lambda: "Template\ncam-fw" in by_id(browser, "job-facts").text, "the job's template")
    facts = by_id(browser, "job-facts").text
    assert "Template\ncam-fw" in facts and "Presigned URLs\nvalid 600 seconds" in facts
    status, job = operator("GET", "/customer/jobs/cam-fw-301")
    assert status == 200 and (job["template_id"], job["document_type"], job["timeout_minutes"]) == (
        "cam-fw",
        "firmware",
        30,
    )
    assert job["document_params"]["version"] == "3.0.1" and "/firmware/cam-3.0.1.bin}" in job["document_params"]["file"]
    assert job["presigned_url_config"]["expires_in_sec"] == 600 and "3.0.1" in by_id(browser, "job-document").text

    # A template through the form: refusals beside their fields, then its page; deleted after a confirmation.
    open_page(browser, base_url, "#/templates", "templates")
    by_id(browser, "tpl-f-template_id").send_keys("cam-fw")
    by_id(browser, "tpl-f-document_type").send_keys("reboot")
    by_id(browser, "tpl-f-document_params").clear()
    by_id(browser, "tpl-f-document_params").send_keys('{"delay": ')
    by_id(browser, "create-template").click()
    wait_for(lambda: "not JSON" in by_id(browser, "tpl-error-document_params").text, "the JSON's error")
    by_id(browser, "tpl-f-document_params").send_keys('"${aws:iot:parameter:delay}"}')
    by_id(browser, "create-template").click()
    wait_for(lambda: "cam-fw" in by_id(browser, "tpl-error-template_id").text, "the conflict beside the id")
    by_id(browser, "tpl-f-template_id").clear()
    by_id(browser, "tpl-f-template_id").send_keys("reboot")
    by_id(browser, "tpl-f-presigned_url_config").send_keys("120")
    by_id(browser, "create-template").click()
    wait_for(lambda: "Parameters\ndelay" in by_id(browser, "template-facts").text, "the new template's page")
    assert "valid 120 seconds" in by_id(browser, "template-facts").text
    by_id(browser, "delete-template").click()
    assert "keep their document" in answer_confirm(browser)
    wait_for(lambda: by_id(browser, "templates").is_displayed(), "the templates list")
    assert operator("GET", "/customer/job-templates/reboot")[0] == 404
    wait_for(lambda: not browser.find_elements(By.CSS_SELECTOR, 'tr[data-template-id="reboot"]'), "the list without it")

    by_id(browser, "sign-out").click()
