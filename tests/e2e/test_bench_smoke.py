"""The benchmark's own code at tiny sizes, so it cannot rot (the real run is `make bench`)."""

from __future__ import annotations

import os
import subprocess
import sys

from jobs_local.devdb import ROOT


def test_the_benchmark_runs_and_prints_its_table(owner_url: str) -> None:
    # Straight to the server, as `make bench` runs: the benchmark's own admin connections prepare
    # statements (DuplicatePreparedStatement through a pooler), and figure 16 starts its own pooler.
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": owner_url},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-6000:]
    table = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| figure |")
    assert (
        "| 1. round trips per device call | pending 1, describe 1, claim 1, progress 1,"
        " progress with a step timeout 1, finish 1, start-next 1 |" in done.stdout
    )
    assert len(table) >= 2 + 16  # the header and every figure
