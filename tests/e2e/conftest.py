"""The end-to-end tests' shared local server, and the browser the console's tests drive."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

from tests.conftest import local_server

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture(scope="package")
def base_url(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One local server for tests/e2e, stopped when they end: it runs the sweep every minute on the
    suite's database, which must not tick under the integration tests that come after (a tick
    between an abort and its assertion rejects the queue the test is about to count)."""
    with local_server(env, tmp_path_factory.mktemp("server") / "server.log") as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    """A headless Chromium for the console's tests (tests/e2e/test_console.py), one per module."""
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
