"""Timing and reporting: samples, percentiles, ratios, and the table a run prints."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass

Call = Callable[[], object]


@dataclass
class Figure:
    name: str
    value: str
    baseline: str
    ratio: float | None
    goal: str

    def row(self) -> str:
        ratio = "" if self.ratio is None else f"{self.ratio:.2f}"
        return f"| {self.name} | {self.value} | {self.baseline} | {ratio} | {self.goal} |"


def table(figures: list[Figure]) -> str:
    return "\n".join(
        [
            "| figure | measured | baseline (same run) | ratio | goal |",
            "|---|---|---|---|---|",
            *(figure.row() for figure in figures),
        ]
    )


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def timed(fn: Call, n: int, warmup: int = 20) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def interleaved(calls: dict[str, Call], n: int, warmup: int = 20) -> dict[str, list[float]]:
    """Samples of several calls taken in turn, so that a baseline and what is compared with it
    see the same moments of a noisy machine."""
    for _ in range(warmup):
        for fn in calls.values():
            fn()
    out: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(n):
        for name, fn in calls.items():
            t0 = time.perf_counter()
            fn()
            out[name].append((time.perf_counter() - t0) * 1000)
    return out


def ms(samples: list[float]) -> str:
    return f"p50 {percentile(samples, 50):.3f} ms, p99 {percentile(samples, 99):.3f} ms"


def p50_ratio(samples: list[float], baseline: list[float]) -> float:
    return percentile(samples, 50) / percentile(baseline, 50)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )
