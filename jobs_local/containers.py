"""N Lambda containers at once: N threads, each with a connection of its own, released together."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jobs_core.db import Database


@dataclass
class Outcome:
    result: Any  # what work returned, or the exception it raised
    ms: float  # how long it took, from the common start


def all_at_once(conninfo: str, n: int, work: Callable[[Database, int], Any]) -> list[Outcome]:
    """Run work(database, i) for i in range(n), all released at the same instant."""
    barrier = threading.Barrier(n)
    outcomes = [Outcome(None, 0.0) for _ in range(n)]
    databases = [Database(lambda refresh: conninfo) for _ in range(n)]
    for database in databases:
        database.connection()  # connected before the start line

    def run(i: int) -> None:
        barrier.wait()
        started = time.perf_counter()
        try:
            outcomes[i].result = work(databases[i], i)
        except Exception as exc:
            outcomes[i].result = exc
        outcomes[i].ms = (time.perf_counter() - started) * 1000

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for database in databases:
        database.close()
    return outcomes
