"""Provision tokens: what a device is given, and what is stored of it."""

from __future__ import annotations

import re
import secrets

import pytest

from jobs_core.domain import credentials

pytestmark = pytest.mark.unit


def test_a_token_never_starts_with_a_dash_which_a_command_line_takes_for_an_option(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    drawn = iter(["-Ab" + "c" * 40, "-" * 43, "Zz" + "9" * 41])
    monkeypatch.setattr(secrets, "token_urlsafe", lambda n: next(drawn))
    assert credentials.new_token() == "Zz" + "9" * 41


def test_a_token_is_256_random_bits_of_url_safe_base64_stored_as_its_sha256() -> None:
    tokens = {credentials.new_token() for _ in range(2000)}
    assert len(tokens) == 2000
    assert all(re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{42}", token) for token in tokens)
    token = next(iter(tokens))
    assert re.fullmatch(r"[0-9a-f]{64}", credentials.token_hash(token)) and token not in credentials.token_hash(token)
    assert credentials.lookup_key("x" * 300) == credentials.lookup_key(None) == credentials.token_hash("")
