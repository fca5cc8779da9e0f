"""The layer's folders are its architecture: imports point down (doors -> domain -> store), only
the doors touch the HTTP resolver, and no source file grows past what one person reads at once."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / "layers" / "jobs_core" / "jobs_core"
# What each part may import of the layer; the modules at the top (settings, errors,
# observability) are shared by all of them.
SHARED = {"settings", "errors", "observability"}
MAY_IMPORT = {
    "store": {"store"},
    "domain": {"domain", "store"},
    "native": {"native", "domain", "store"},
    "aws": {"aws", "native", "domain", "store"},
}
MAX_LINES = 400

pytestmark = pytest.mark.unit


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def _modules() -> list[tuple[str, Path]]:
    return [(path.relative_to(LAYER).parts[0], path) for path in sorted(LAYER.glob("*/*.py"))]


def test_every_part_imports_only_what_lies_below_it() -> None:
    wrong = []
    for part, path in _modules():
        for name in _imports(path):
            if not name.startswith("jobs_core.") or name.split(".")[1] in SHARED:
                continue
            if name.split(".")[1] not in MAY_IMPORT[part]:
                wrong.append(f"{path.relative_to(LAYER)} imports {name}")
    assert not wrong
    assert {part for part, _ in _modules()} == set(MAY_IMPORT)  # no folder this test does not know


def test_only_the_doors_import_the_http_resolver() -> None:
    resolvers = [
        str(path.relative_to(LAYER))
        for part, path in _modules()
        if any(name.startswith("aws_lambda_powertools.event_handler") for name in _imports(path))
    ]
    assert resolvers and all(where.startswith(("native/", "aws/")) for where in resolvers), resolvers


def test_no_source_file_outside_tests_is_over_400_lines() -> None:
    tracked = subprocess.run(["git", "ls-files", "*.py", "*.js", "*.sql"], cwd=ROOT, capture_output=True, text=True)
    too_long = {
        name: lines
        for name in tracked.stdout.split()
        if not name.startswith("tests/")
        and (ROOT / name).exists()
        and (lines := len((ROOT / name).read_text().splitlines())) > MAX_LINES
    }
    assert not too_long
