"""The transition table: the rules the code and the tests both read."""

from typing import get_args

from jobs_core.domain.models import DeviceTarget
from jobs_core.domain.statemachine import (
    ACTIVE,
    DEVICE_TARGETS,
    TERMINAL,
    TRANSITIONS,
    Actor,
    ExecutionStatus,
    is_claim,
    sources,
)


def test_terminal_statuses_are_never_left() -> None:
    assert not [t for t in TRANSITIONS if t[0] in TERMINAL]


def test_every_status_is_active_or_terminal() -> None:
    assert set(ExecutionStatus) == ACTIVE | TERMINAL
    assert not ACTIVE & TERMINAL


def test_what_a_device_may_send_is_what_the_table_allows() -> None:
    assert set(get_args(DeviceTarget)) == {str(t) for t in DEVICE_TARGETS}


def test_sources_read_the_table() -> None:
    assert sources(ExecutionStatus.IN_PROGRESS, Actor.DEVICE) == ["IN_PROGRESS", "QUEUED"]
    assert sources(ExecutionStatus.SUCCEEDED, Actor.DEVICE) == ["IN_PROGRESS"]
    assert sources(ExecutionStatus.REJECTED, Actor.DEVICE) == ["IN_PROGRESS", "QUEUED"]
    assert sources(ExecutionStatus.REJECTED, Actor.OPERATOR) == ["QUEUED", "UNRELEASED"]
    assert sources(ExecutionStatus.TIMED_OUT, Actor.SWEEP) == ["IN_PROGRESS", "QUEUED", "UNRELEASED"]
    assert sources(ExecutionStatus.QUEUED, Actor.SWEEP) == ["UNRELEASED"]  # the release
    assert sources(ExecutionStatus.TIMED_OUT, Actor.DEVICE) == []


def test_only_queued_to_in_progress_is_a_claim() -> None:
    claims = [(frm, to) for frm in ExecutionStatus for to in ExecutionStatus if is_claim(frm, to)]
    assert claims == [(ExecutionStatus.QUEUED, ExecutionStatus.IN_PROGRESS)]
