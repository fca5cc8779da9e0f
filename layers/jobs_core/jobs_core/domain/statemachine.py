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
    UNRELEASED = "UNRELEASED"  # held back by the job's schedule or rollout rate: no device sees it yet
    QUEUED = "QUEUED"
    IN_PROGRESS = "IN_PROGRESS"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    REJECTED = "REJECTED"
    TIMED_OUT = "TIMED_OUT"
    CANCELED = "CANCELED"  # ended by the operator while it ran (force cancel): not the device's outcome
    REMOVED = "REMOVED"  # its device left the job's targets (was deleted) before it finished (AWS's name)


class JobStatus(StrEnum):
    SCHEDULED = "SCHEDULED"  # before its scheduling.start_time: every execution UNRELEASED
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    CANCELED = "CANCELED"


class Actor(StrEnum):
    DEVICE = "device"
    OPERATOR = "operator"  # cancel
    SWEEP = "sweep"  # the schedule: expiry and timeouts, rollout release, start and end of scheduled jobs
    SYSTEM = "system"  # what follows from the executions: a job completes, or aborts, on their counts
    FLEET = "fleet"  # the registry: a device deleted
    TARGETS = "targets"  # a continuous job's targets: a device left them (left its target groups)


class Transition(NamedTuple):
    source: ExecutionStatus
    target: ExecutionStatus
    actor: Actor
    claim: bool = False  # needs a claimable job (running, unexpired); sets started_at
    # A retry: the attempt ends with this outcome (kept in the execution's attempts), and the
    # execution is QUEUED again as the next attempt, in the same change.
    retry_of: ExecutionStatus | None = None


class JobTransition(NamedTuple):
    source: JobStatus
    target: JobStatus
    actor: Actor


U, Q, P = ExecutionStatus.UNRELEASED, ExecutionStatus.QUEUED, ExecutionStatus.IN_PROGRESS
S, F = ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED
R, T = ExecutionStatus.REJECTED, ExecutionStatus.TIMED_OUT
X, V = ExecutionStatus.CANCELED, ExecutionStatus.REMOVED

# Every execution transition there is.
TRANSITIONS: frozenset[Transition] = frozenset(
    {
        Transition(Q, P, Actor.DEVICE, claim=True),
        Transition(Q, R, Actor.DEVICE),  # refuse before starting
        Transition(P, P, Actor.DEVICE),  # progress: new status_details
        Transition(P, S, Actor.DEVICE),
        Transition(P, F, Actor.DEVICE),
        Transition(P, R, Actor.DEVICE),
        Transition(P, Q, Actor.DEVICE, retry_of=F),  # FAILED with a retry left
        Transition(U, R, Actor.OPERATOR),  # cancel: status_details {"reason": ...}
        Transition(Q, R, Actor.OPERATOR),
        Transition(P, X, Actor.OPERATOR),  # force cancel: the operator ends it while it runs
        Transition(U, Q, Actor.SWEEP),  # released, at the rollout's rate (or all at the job's start)
        # A job stopped by its abort rule or its end_time: STOP_ROLLOUT ends what was not released,
        # CANCEL also what was not started, FORCE_CANCEL also what runs (status_details {"reason"}).
        Transition(U, R, Actor.SWEEP),
        Transition(Q, R, Actor.SWEEP),
        Transition(P, X, Actor.SWEEP),
        Transition(U, T, Actor.SWEEP),  # the job expired before it was released
        Transition(Q, T, Actor.SWEEP),  # the job expired
        Transition(P, T, Actor.SWEEP),  # the job expired, or its in-progress or step timeout passed
        Transition(P, Q, Actor.SWEEP, retry_of=T),  # timed out with a retry left
        # The device was deleted: what it had not finished ends with it (status_details {"reason"}).
        Transition(U, V, Actor.FLEET),
        Transition(Q, V, Actor.FLEET),
        Transition(P, V, Actor.FLEET),
        # A device left every target of a continuous job before its execution started (one that
        # runs goes on: the device may finish what it started).
        Transition(U, V, Actor.TARGETS),
        Transition(Q, V, Actor.TARGETS),
    }
)

# Every job transition there is.
JOB_TRANSITIONS: frozenset[JobTransition] = frozenset(
    {
        JobTransition(JobStatus.SCHEDULED, JobStatus.IN_PROGRESS, Actor.SWEEP),  # its start_time came
        JobTransition(JobStatus.IN_PROGRESS, JobStatus.COMPLETED, Actor.SYSTEM),  # every execution terminal
        JobTransition(JobStatus.SCHEDULED, JobStatus.CANCELED, Actor.OPERATOR),
        JobTransition(JobStatus.IN_PROGRESS, JobStatus.CANCELED, Actor.OPERATOR),
        JobTransition(JobStatus.IN_PROGRESS, JobStatus.CANCELED, Actor.SYSTEM),  # an abort rule was crossed
        JobTransition(JobStatus.IN_PROGRESS, JobStatus.CANCELED, Actor.SWEEP),  # end_time, CANCEL or FORCE_CANCEL
    }
)

TERMINAL: frozenset[ExecutionStatus] = frozenset({S, F, R, T, X, V})
ACTIVE: frozenset[ExecutionStatus] = frozenset({U, Q, P})
# What a device may see of its executions: everything but what was not released to it.
HIDDEN_FROM_DEVICES: frozenset[ExecutionStatus] = frozenset({U})

# What a device may ask for in PUT .../execution (a retry is what follows a FAILED, not a request).
DEVICE_TARGETS: frozenset[ExecutionStatus] = frozenset(
    t.target for t in TRANSITIONS if t.actor is Actor.DEVICE and t.retry_of is None
)


def allowed(source: ExecutionStatus, target: ExecutionStatus, actor: Actor) -> bool:
    return any(
        t.source is source and t.target is target and t.actor is actor and t.retry_of is None for t in TRANSITIONS
    )


# Cached (the table never changes at run time); callers only read the lists they get.
@cache
def sources(target: ExecutionStatus, actor: Actor) -> list[str]:
    """The statuses from which `actor` may move an execution to `target`: the compare-and-set's WHERE."""
    return sorted(str(t.source) for t in TRANSITIONS if t.target is target and t.actor is actor and t.retry_of is None)


@cache
def retry_sources(outcome: ExecutionStatus, actor: Actor) -> list[str]:
    """The statuses from which an attempt that `actor` ends with `outcome` may be retried (QUEUED
    again as the next attempt), when the job's retry criteria leave a retry."""
    return sorted(str(t.source) for t in TRANSITIONS if t.retry_of is outcome and t.actor is actor)


@cache
def claim_sources(target: ExecutionStatus, actor: Actor) -> list[str]:
    """Of those, the ones whose move to `target` is a claim: it needs a claimable job."""
    return sorted(str(t.source) for t in TRANSITIONS if t.target is target and t.actor is actor and t.claim)


def is_claim(source: ExecutionStatus, target: ExecutionStatus) -> bool:
    return any(t.source is source and t.target is target and t.claim for t in TRANSITIONS)


def job_sources(target: JobStatus, actor: Actor) -> list[str]:
    """The job statuses from which `actor` may move a job to `target`."""
    return sorted(str(t.source) for t in JOB_TRANSITIONS if t.target is target and t.actor is actor)


@cache
def retry_target(outcome: ExecutionStatus, actor: Actor) -> str | None:
    """What an attempt that ends with `outcome` becomes when it is retried (QUEUED), if it may be."""
    targets = sorted({str(t.target) for t in TRANSITIONS if t.retry_of is outcome and t.actor is actor})
    return targets[0] if targets else None
