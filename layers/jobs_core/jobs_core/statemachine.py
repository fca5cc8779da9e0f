"""The execution and job state machines: one table of transitions, used by the code and the tests."""

from __future__ import annotations

from enum import StrEnum


class ExecutionStatus(StrEnum):
    QUEUED = "QUEUED"
    IN_PROGRESS = "IN_PROGRESS"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    REJECTED = "REJECTED"
    TIMED_OUT = "TIMED_OUT"


class JobStatus(StrEnum):
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    CANCELED = "CANCELED"


class Actor(StrEnum):
    DEVICE = "device"
    OPERATOR = "operator"  # cancel
    SWEEP = "sweep"  # expiry


Q, P = ExecutionStatus.QUEUED, ExecutionStatus.IN_PROGRESS
S, F = ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED
R, T = ExecutionStatus.REJECTED, ExecutionStatus.TIMED_OUT

# (from, to, who): every execution transition there is.
TRANSITIONS: frozenset[tuple[ExecutionStatus, ExecutionStatus, Actor]] = frozenset(
    {
        (Q, P, Actor.DEVICE),  # claim: sets started_at
        (Q, R, Actor.DEVICE),  # refuse before starting
        (P, P, Actor.DEVICE),  # progress: new status_details
        (P, S, Actor.DEVICE),
        (P, F, Actor.DEVICE),
        (P, R, Actor.DEVICE),
        (Q, R, Actor.OPERATOR),  # cancel
        (Q, T, Actor.SWEEP),
        (P, T, Actor.SWEEP),
    }
)

TERMINAL: frozenset[ExecutionStatus] = frozenset({S, F, R, T})
ACTIVE: frozenset[ExecutionStatus] = frozenset({Q, P})

# What a device may ask for in PUT .../execution.
DEVICE_TARGETS: frozenset[ExecutionStatus] = frozenset(to for _, to, who in TRANSITIONS if who is Actor.DEVICE)


def sources(target: ExecutionStatus, actor: Actor) -> list[str]:
    """The statuses from which `actor` may move an execution to `target`: the compare-and-set's WHERE."""
    return sorted(str(frm) for frm, to, who in TRANSITIONS if to is target and who is actor)


def is_claim(source: ExecutionStatus, target: ExecutionStatus) -> bool:
    return source is Q and target is P
