"""8. Device operations per second with W worker processes, each one container: its handlers
in-process, its own connection, its own devices; a device's work is poll, claim, progress, finish,
then poll again. Also the CPU per operation, the workers' and their PostgreSQL backends'."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from contextlib import redirect_stdout
from typing import Any

from bench.container import handler_call, use_container_database
from bench.dataset import BIG, Dataset, token
from bench.harness import Call, Figure
from bench.instruments import process_cpu_s

WORKERS = (1, 2, 4, 8)
DEVICES_PER_WORKER = 50
STEPS = (
    {"status": "IN_PROGRESS"},
    {"status": "IN_PROGRESS", "status_details": {"p": 50}},
    {"status": "SUCCEEDED"},
)


def device_worker(url: str, devices: list[int], seconds: float, start: Any, results: Any) -> None:
    events: dict[tuple[str, int], Call] = {}

    def request(path: str, me: str, step: int = -1) -> Call:
        key = (f"{path} {me}", step)
        if key not in events:
            events[key] = handler_call("PUT", path, me, STEPS[step]) if step >= 0 else handler_call("GET", path, me)
        return events[key]

    with open(os.devnull, "w") as devnull, redirect_stdout(devnull):
        backend = use_container_database(url).connection().info.backend_pid
        ops = 0
        start.wait()
        cpu_before, backend_before = time.process_time(), process_cpu_s(backend)
        deadline = time.perf_counter() + seconds
        i = 0
        while time.perf_counter() < deadline:
            me = token(BIG, devices[i % len(devices)])
            i += 1
            pending = json.loads(str(request("/device/v1/jobs/pending", me)()["body"]))  # type: ignore[index]
            ops += 1
            if not pending["jobs"]:
                continue
            path = f"/device/v1/jobs/{pending['jobs'][0]['job_id']}/execution"
            for step in range(len(STEPS)):
                request(path, me, step)()
                ops += 1
        cpu, backend_after = time.process_time() - cpu_before, process_cpu_s(backend)
    backend_cpu = backend_after - backend_before if backend_after is not None and backend_before is not None else None
    results.put((ops, cpu, backend_cpu))


def run(data: Dataset) -> list[Figure]:
    seconds = 0.5 if data.quick else 5.0
    curve = {}
    cpu_per_op = ""
    spawn = multiprocessing.get_context("spawn")
    for workers in WORKERS:
        start, results = spawn.Event(), spawn.Queue()
        procs = [
            spawn.Process(target=device_worker, args=(data.url, data.take(DEVICES_PER_WORKER), seconds, start, results))
            for _ in range(workers)
        ]
        for proc in procs:
            proc.start()
        time.sleep(1.5 if data.quick else 3.0)  # cold starts out of the way
        start.set()
        reports = [results.get(timeout=120) for _ in procs]
        for proc in procs:
            proc.join()
        total = sum(ops for ops, _, _ in reports)
        curve[workers] = total / seconds
        if workers == 2:  # as many workers as cores: where the CPU per operation shows the ceiling
            python_ms = 1000 * sum(cpu for _, cpu, _ in reports) / total
            backends = [b for _, _, b in reports if b is not None]
            postgres = f", PostgreSQL {1000 * sum(backends) / total:.2f} ms" if len(backends) == len(reports) else ""
            cpu_per_op = f"; CPU per operation at W=2: Python {python_ms:.2f} ms{postgres}"
    best = max(curve.values())
    return [
        Figure(
            "8. device operations per second (poll, claim, progress, finish), W worker processes",
            ", ".join(f"W={w}: {v:,.0f}" for w, v in curve.items()) + cpu_per_op,
            f"W=1: {curve[1]:,.0f}",
            best / curve[1],
            ">= 2,000 ops/s",
        )
    ]
