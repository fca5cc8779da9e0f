"""What the console's browser tests do on its pages: wait for what a page shows, sign in, read a
job's bar, answer a confirmation; and what the operator API and the device API answer."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement

from tests.e2e.test_e2e_http import http


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


def operator_api(base_url: str, jwt: str) -> Callable[..., tuple[int, Any]]:
    """The operator API with this JWT: operator(method, path, body=None) -> (status, body)."""

    def operator(method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return http(base_url, method, path, headers={"Authorization": "Bearer " + jwt}, body=body)

    return operator
