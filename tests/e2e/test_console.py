"""The operator console in a real headless Chromium (Debian's chromium and chromium-driver, which
`make chromium` installs), against the local server over HTTP: sign in with a token, create a
job for a group, let devices finish through the device API and watch the bars, cancel, and see
that a document type made of markup stays text. Screenshots go to the test's output directory."""

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
    browser.find_element(By.ID, "create").click()
    wait_for(lambda: browser.find_element(By.ID, "job-title").text == "Job fw-210", "the new job's page")
    assert "2.1.0" in browser.find_element(By.ID, "job-document").text

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
