"""Run every figure in order and print the table (python -m bench --help)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from contextlib import redirect_stdout
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from bench import dataset
from bench.container import close_container_database, use_container_database
from bench.figures import (
    aws_api,
    cold_start,
    deep_pages,
    fan_out,
    firmware,
    fleet,
    hot_row,
    idle_sweep,
    job_size,
    latency,
    lifecycle,
    listing,
    pg_cpu,
    pooled_load,
    push,
    rollout,
    round_trips,
    seed,
    sweep,
    targets,
    throughput,
)
from bench.harness import Figure, machine, table
from jobs_local import devdb

# In this order: the fan-out leaves the jobs the sweep times out; the hot row finishes on a
# vacuumed table (listing vacuums after its millions of new rows); the fleet's tenants come last, so
# that no earlier figure sees their devices; the targets' tenants after them, for the same reason.
FIGURES = [
    round_trips,
    latency,
    job_size,
    seed,
    fan_out,
    sweep,
    idle_sweep,
    listing,
    hot_row,
    throughput,
    cold_start,
    deep_pages,
    lifecycle,
    rollout,
    aws_api,
    pg_cpu,
    pooled_load,
    fleet,
    targets,
    push,
    firmware,
]


def figures(server_url: str, devices: int, quick: bool, only: set[str] | None = None) -> list[Figure]:
    out: list[Figure] = []
    with dataset.bench_database(server_url) as url, psycopg.connect(url, autocommit=True) as admin:
        # First: the settings the layer reads (the sweep's batch sizes, push's wake) name this database.
        use_container_database(url)
        data = dataset.build(url, admin, devices, quick)
        for figure in FIGURES:
            if only is None or figure.__name__.rsplit(".", 1)[-1] in only:
                out += figure.run(data)
        close_container_database()
        data.db.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check the code runs")
    parser.add_argument("--out", type=Path, help="also write the table here (e.g. bench/RESULTS.md)")
    parser.add_argument(
        "--only",
        action="append",
        choices=[figure.__name__.rsplit(".", 1)[-1] for figure in FIGURES],
        help="run this figure only (repeatable); a figure may need what an earlier one leaves",
    )
    args = parser.parse_args(argv)
    devices = 3000 if args.smoke else args.devices
    server_url = devdb.database_url()
    with psycopg.connect(server_url) as conn:
        version, host = conn.info.server_version, conn.info.host
    transport = "a unix socket" if host.startswith("/") else f"TCP to {host}"
    started = time.perf_counter()
    with open(os.devnull, "w") as devnull, redirect_stdout(devnull):  # the handlers' EMF metrics and logs
        rows = figures(server_url, devices, args.smoke, set(args.only) if args.only else None)
    printed = table(rows)
    print(printed)
    print(f"\n({time.perf_counter() - started:.0f} s)")
    if args.out:
        header = (
            f"# Benchmark results\n\n{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, on {machine()}; "
            f"PostgreSQL {version // 10000}.{version % 100} over {transport}; "
            f"{devices:,} devices in the big tenant.\n\n"
            "Run with `make bench`. Latencies are in-process handler calls, what a warm Lambda container\n"
            "spends, against the PostgreSQL round trip they are built on, measured in the same run.\n\n"
        )
        notes = devdb.ROOT / "bench" / "NOTES.md"
        args.out.write_text(header + printed + "\n" + (("\n" + notes.read_text()) if notes.exists() else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
