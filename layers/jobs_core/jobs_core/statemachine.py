"""The execution and job state machines: one table of transitions each, the only source of truth.

The code reads them at run time: a device update passes its allowed sources into SQL, the
operator's cancel and the sweep build their statements from them, and a test fails when any
SQL of the layer names a status or a transition these tables lack (tests/unit/test_statemachine.py).
"""

from __future__ import annotations

from enum import StrEnum
from functools import cache
from typing import NamedTuple


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
    SWEEP = "sweep"  # expiry; completes jobs
    SYSTEM = "system"  # what follows from the executions: a job completes when all are terminal


class Transition(NamedTuple):
    source: ExecutionStatus
    target: ExecutionStatus
    actor: Actor
    claim: bool = False  # needs a claimable job (running, unexpired); sets started_at


class JobTransition(NamedTuple):
    source: JobStatus
    target: JobStatus
    actor: Actor


Q, P = ExecutionStatus.QUEUED, ExecutionStatus.IN_PROGRESS
S, F = ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED
R, T = ExecutionStatus.REJECTED, ExecutionStatus.TIMED_OUT

# Every execution transition there is.
TRANSITIONS: frozenset[Transition] = frozenset(
    {
        Transition(Q, P, Actor.DEVICE, claim=True),
        Transition(Q, R, Actor.DEVICE),  # refuse before starting
        Transition(P, P, Actor.DEVICE),  # progress: new status_details
        Transition(P, S, Actor.DEVICE),
        Transition(P, F, Actor.DEVICE),
        Transition(P, R, Actor.DEVICE),
        Transition(Q, R, Actor.OPERATOR),  # cancel: status_details {"reason": ...}
        Transition(Q, T, Actor.SWEEP),  # the job expired
        Transition(P, T, Actor.SWEEP),
    }
)

# Every job transition there is.
JOB_TRANSITIONS: frozenset[JobTransition] = frozenset(
    {
        JobTransition(JobStatus.IN_PROGRESS, JobStatus.COMPLETED, Actor.SYSTEM),  # every execution terminal
        JobTransition(JobStatus.IN_PROGRESS, JobStatus.CANCELED, Actor.OPERATOR),
    }
)

TERMINAL: frozenset[ExecutionStatus] = frozenset({S, F, R, T})
ACTIVE: frozenset[ExecutionStatus] = frozenset({Q, P})

# What a device may ask for in PUT .../execution.
DEVICE_TARGETS: frozenset[ExecutionStatus] = frozenset(t.target for t in TRANSITIONS if t.actor is Actor.DEVICE)


def allowed(source: ExecutionStatus, target: ExecutionStatus, actor: Actor) -> bool:
    return any(t.source is source and t.target is target and t.actor is actor for t in TRANSITIONS)


# Cached (the table never changes at run time); callers only read the lists they get.
@cache
def sources(target: ExecutionStatus, actor: Actor) -> list[str]:
    """The statuses from which `actor` may move an execution to `target`: the compare-and-set's WHERE."""
    return sorted(str(t.source) for t in TRANSITIONS if t.target is target and t.actor is actor)


@cache
def claim_sources(target: ExecutionStatus, actor: Actor) -> list[str]:
    """Of those, the ones whose move to `target` is a claim: it needs a claimable job."""
    return sorted(str(t.source) for t in TRANSITIONS if t.target is target and t.actor is actor and t.claim)


def is_claim(source: ExecutionStatus, target: ExecutionStatus) -> bool:
    return any(t.source is source and t.target is target and t.claim for t in TRANSITIONS)


def job_sources(target: JobStatus, actor: Actor) -> list[str]:
    """The job statuses from which `actor` may move a job to `target`."""
    return sorted(str(t.source) for t in JOB_TRANSITIONS if t.target is target and t.actor is actor)
