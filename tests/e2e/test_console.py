"""The operator console in a real headless Chromium (Debian's chromium and chromium-driver, which
`make chromium` installs), against the local server over HTTP: sign in with a token, create a
job for a group, let devices finish through the device API and watch the bars, cancel, and see
that a document type made of markup stays text; register a device and use the token the page
shows, rotate and revoke it, make a group of devices, delete a device and see its execution
REMOVED. Screenshots go to the test's output directory."""

from __future__ import annotations

import shutil
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.select import Select

from jobs_core.domain import groups
from jobs_core.store.db import Database
from jobs_local import devjwt
from tests.e2e.test_e2e_http import http
from tests.factories import Register

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    if not (shutil.which(CHROMIUM) and shutil.which(DRIVER)):
        raise RuntimeError("Chromium and its driver are missing: `make chromium` installs them (make test does)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(check: Callable[[], Any], what: str, timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = check()
        except Exception:  # the page is mid-render: stale or absent elements
            found = None
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def sign_in(browser: WebDriver, base_url: str, token: str) -> None:
    browser.get(base_url + "/console")
    if browser.execute_script("return sessionStorage.length"):  # a test before did not sign out
        browser.execute_script("sessionStorage.clear()")
        browser.refresh()
    browser.find_element(By.ID, "token").send_keys(token)
    browser.find_element(By.ID, "use-token").click()
    wait_for(lambda: browser.find_element(By.ID, "jobs").is_displayed(), "the jobs list")


def bar_of(browser: WebDriver, job_id: str) -> dict[str, tuple[int, float]]:
    """The job's row's bar: status -> (count, width in % of the bar)."""
    row = browser.find_element(By.CSS_SELECTOR, f'tr[data-job-id="{job_id}"]')
    bar = row.find_element(By.CSS_SELECTOR, ".bar")
    total = bar.rect["width"]
    return {
        s.get_attribute("data-status") or "": (int(s.get_attribute("data-count") or 0), 100 * s.rect["width"] / total)
        for s in bar.find_elements(By.CSS_SELECTOR, ".segment")
    }


def device(base_url: str, token: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    return http(base_url, method, path, headers={"X-Provision-Token": token}, body=body)


def field(browser: WebDriver, name: str) -> WebElement:
    return browser.find_element(By.ID, f"f-{name}")


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


def by_id(browser: WebDriver, element_id: str) -> WebElement:
    return browser.find_element(By.ID, element_id)


def open_page(browser: WebDriver, base_url: str, hash_: str, section: str) -> None:
    browser.get(f"{base_url}/console{hash_}")
    wait_for(lambda: by_id(browser, section).is_displayed(), f"the {section} page")


def answer_confirm(browser: WebDriver, accept: bool = True) -> str:
    """The page's confirm(): its question, answered."""
    alert = wait_for(lambda: browser.switch_to.alert, "a confirmation")
    question = str(alert.text)
    if accept:
        alert.accept()
    else:
        alert.dismiss()
    return question


def pending(base_url: str, token: str) -> int:
    """What the device API answers a device's token with: 200 or 401."""
    return device(base_url, token, "GET", "/device/v1/jobs/pending")[0]


def row_ids(browser: WebDriver, tbody: str) -> list[str]:
    """The ids of the devices a table lists, in order."""
    return [r.get_attribute("data-device-id") or "" for r in browser.find_elements(By.CSS_SELECTOR, f"#{tbody} tr")]


def shown_token(browser: WebDriver, other_than: str = "") -> str:
    return str(wait_for(lambda: (t := by_id(browser, "secret-token").text) != other_than and t, "the token shown"))


def test_an_operator_manages_the_fleet_in_the_console(
    browser: WebDriver, base_url: str, tenant: str, tmp_path: Path
) -> None:
    jwt = devjwt.mint(tenant, "alice")

    def operator(method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return http(base_url, method, path, headers={"Authorization": "Bearer " + jwt}, body=body)

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
