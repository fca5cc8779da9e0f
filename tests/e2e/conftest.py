"""The end-to-end tests' shared local server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import local_server


@pytest.fixture(scope="package")
def base_url(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One local server for tests/e2e, stopped when they end: it runs the sweep every minute on the
    suite's database, which must not tick under the integration tests that come after (a tick
    between an abort and its assertion rejects the queue the test is about to count)."""
    with local_server(env, tmp_path_factory.mktemp("server") / "server.log") as url:
        yield url
