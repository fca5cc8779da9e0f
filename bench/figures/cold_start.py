"""9. Cold start: import a device handler and serve its first event in a fresh process, against the
same third-party modules imported alone (what any handler built on the design card's libraries
pays before a line of ours runs) and a bare interpreter start."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Any

from bench.dataset import SMALL, Dataset, token
from bench.harness import Figure
from jobs_local import template
from jobs_local.devdb import ROOT

COLD = r"""
import json, sys, time
t0 = time.perf_counter()
already = set(sys.modules)
import device_list_pending
t1 = time.perf_counter()
from jobs_local.lambda_context import LocalContext
event = json.load(open(sys.argv[1]))
event["headers"]["x-provision-token"] = sys.argv[2]
response = device_list_pending.lambda_handler(event, LocalContext())
t2 = time.perf_counter()
assert response["statusCode"] == 200, response
ours = ("jobs_core", "jobs_local", "device_")
loaded = [m for m in sys.modules if m not in already and not m.startswith(ours)]
print(json.dumps({"first": (t2 - t0) * 1000, "import": (t1 - t0) * 1000, "modules": loaded}))
"""

LIBRARIES = r"""
import importlib, json, sys, time
modules = json.loads(sys.argv[1])
t0 = time.perf_counter()
for name in modules:
    importlib.import_module(name)
print(json.dumps({"import": (time.perf_counter() - t0) * 1000}))
"""


def run(data: Dataset) -> list[Figure]:
    # The environment the template gives a device function, where it bears on start-up.
    template_env = template.load()["Globals"]["Function"]["Environment"]["Variables"]
    env = {
        **os.environ,
        "DATABASE_URL": data.url,
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "PYDANTIC_DISABLE_PLUGINS": template_env["PYDANTIC_DISABLE_PLUGINS"],
    }
    event = str(ROOT / "events" / "device_list_pending.json")
    me = token(SMALL, data.take(1, SMALL)[0])

    def measure(*args: str) -> dict[str, Any]:
        done = subprocess.run([sys.executable, "-c", *args], env=env, capture_output=True, text=True, check=True)
        measured: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return measured

    firsts, imports, libraries, bare = [], [], [], []
    for _ in range(3 if data.quick else 15):  # in turn, so that all three see the same machine
        measured = measure(COLD, event, me)
        firsts.append(measured["first"])
        imports.append(measured["import"])
        libraries.append(measure(LIBRARIES, json.dumps(measured["modules"]))["import"])
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        bare.append((time.perf_counter() - t0) * 1000)
    first, libs = statistics.median(firsts), statistics.median(libraries)
    return [
        Figure(
            f"9. cold start: import a device handler + serve its first event (Python {platform.python_version()})",
            f"median {first:.0f} ms (import {statistics.median(imports):.0f} ms)",
            f"the same third-party modules imported alone: {libs:.0f} ms; bare interpreter start:"
            f" {statistics.median(bare):.0f} ms",
            first / libs,
            "<= 250 ms",
        )
    ]
