"""The state machine's tables are the only source of truth: no SQL of the layer (its function
files, its migrations, the statements its modules build) names a status the tables lack, or
moves a row between statuses the tables do not connect."""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path
from typing import get_args

from psycopg import sql

import jobs_core
from jobs_core.domain.job_settings import EndBehavior, TargetSelection
from jobs_core.domain.statemachine import JOB_TRANSITIONS, TRANSITIONS, ExecutionStatus, JobStatus
from jobs_core.store.migrate import FUNCTIONS, MIGRATIONS

STATUSES = {str(s) for s in ExecutionStatus} | {str(s) for s in JobStatus}
# Upper-case literals that are not statuses: the ways a rollout ends (stop_action, end_behavior),
# how a job's targets are selected, and the time zone the device functions set.
NAMES = STATUSES | set(get_args(EndBehavior)) | set(get_args(TargetSelection)) | {"UTC", "INSERT", "UPDATE"}  # TG_OP
CONNECTED = {
    "job_executions": {(str(t.source), str(t.target)) for t in TRANSITIONS},
    "jobs": {(str(t.source), str(t.target)) for t in JOB_TRANSITIONS},
}
LITERAL = re.compile(r"'([A-Z][A-Z_]+)'")
SET_STATUS = re.compile(r"UPDATE\s+(jobs|job_executions)(?:\s+(?:AS\s+)?(\w+))?\s+SET\s+status\s*=\s*'(\w+)'", re.I)


def layer_sql() -> Iterator[tuple[str, str]]:
    """(where, SQL code without its comments) for every SQL file of the layer and every statement
    its modules hold."""
    for path in sorted([*Path(FUNCTIONS).glob("*.sql"), *Path(MIGRATIONS).glob("*.sql")]):
        yield path.name, uncommented(path.read_text())
    for module in pkgutil.walk_packages(jobs_core.__path__, "jobs_core."):
        loaded = importlib.import_module(module.name)
        for name, value in vars(loaded).items():
            if isinstance(value, sql.Composable):
                yield f"{module.name}.{name}", uncommented(value.as_string(None))
            elif isinstance(value, str) and re.search(r"\b(SELECT|UPDATE|INSERT)\b", value):
                yield f"{module.name}.{name}", uncommented(value)


def uncommented(text: str) -> str:
    return re.sub(r"--[^\n]*", "", text)


def transitions(text: str) -> Iterator[tuple[str, set[str], str]]:
    """(table, sources, target) of each statement that sets a status to a literal. The sources are
    the literals the statement compares the updated table's status with (alias.status = 'X', or
    alias.status IN ('X', 'Y'), anywhere in the statement, its CTEs included)."""
    for statement in text.split(";"):
        for found in SET_STATUS.finditer(statement):
            table, alias, target = found.group(1), found.group(2), found.group(3)
            rest = statement[: found.start()] + statement[found.end() :]
            column = rf"(?<![\w.]){re.escape(alias)}\.status" if alias else r"(?<![\w.])status"
            sources: set[str] = set()
            for compared in re.finditer(column + r"\s*(?:=\s*('\w+')|IN\s*\(([^)]*)\))", rest):
                sources |= set(LITERAL.findall(compared.group(1) or compared.group(2)))
            yield table, sources, target


def test_every_status_the_sql_names_is_in_the_tables() -> None:
    unknown = {(where, name) for where, text in layer_sql() for name in LITERAL.findall(text) if name not in NAMES}
    assert not unknown


def test_every_status_change_the_sql_makes_is_in_the_tables() -> None:
    found = [(where, *change) for where, text in layer_sql() for change in transitions(text)]
    # what the layer has today as literals: the cancel's three, the completion (and 0003's); the
    # device update, start-next, the sweep and the cancel of one execution take theirs passed in
    assert {(where, target) for where, _, _, target in found} >= {
        ("jobs_core.domain.jobs_cancel.REJECT_QUEUED", "REJECTED"),
        ("jobs_core.domain.jobs_cancel.CANCEL_RUNNING", "CANCELED"),
        ("jobs_core.domain.jobs_cancel.CANCEL", "CANCELED"),
        ("jobs.sql", "COMPLETED"),
    }
    for where, table, sources, target in found:
        assert sources, f"{where}: a change to {target} that does not say from which status"
        assert {(s, target) for s in sources} <= CONNECTED[table], (where, sources, target)


def test_the_checks_can_fail() -> None:
    bad = "UPDATE job_executions e SET status = 'QUEUED' WHERE e.status = 'SUCCEEDED' AND j.status = 'DONE'"
    assert list(transitions(bad)) == [("job_executions", {"SUCCEEDED"}, "QUEUED")]
    assert ("SUCCEEDED", "QUEUED") not in CONNECTED["job_executions"]
    assert "DONE" in LITERAL.findall(bad) and "DONE" not in STATUSES
    assert list(transitions("UPDATE jobs SET status = 'CANCELED' WHERE job_id = 'x'")) == [("jobs", set(), "CANCELED")]
