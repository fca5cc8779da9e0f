"""Measuring instruments, for the bench and the tests that measure:

- RoundTripCounter: a TCP relay between a client and PostgreSQL, on loopback, that counts network
  round trips (client flights: each time the client speaks after the server has answered). Given
  a one-way delay, it holds every chunk that long before passing it on, without holding up the
  chunks behind it: a network's latency, not a slow link.
- all_at_once: N Lambda containers at once: N threads, each with a connection of its own,
  released together.
- process_cpu_s: a process's CPU time, as /proc tells it.
"""

from __future__ import annotations

import heapq
import os
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from jobs_core.store.db import Database


class RoundTripCounter:
    def __init__(self, conninfo: str, delay_s: float = 0.0) -> None:
        params = conninfo_to_dict(conninfo)
        self._host = str(params.get("host") or "127.0.0.1")
        self._port = int(params.get("port") or 5432)
        self.delay_s = delay_s
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.conninfo = make_conninfo(conninfo, host="127.0.0.1", port=self._listener.getsockname()[1])
        self.flights = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _connect_upstream(self) -> socket.socket:
        if self._host.startswith("/"):  # a unix socket directory, as libpq names it
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(f"{self._host}/.s.PGSQL.{self._port}")
            return upstream
        upstream = socket.create_connection((self._host, self._port))
        upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return upstream

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            server = self._connect_upstream()
            threading.Thread(target=self._relay, args=(client, server), daemon=True).start()

    def _relay(self, client: socket.socket, server: socket.socket) -> None:
        last = None
        due: list[tuple[float, int, socket.socket, bytes]] = []  # (deadline, order, destination, data)
        order = 0
        with client, server:
            while True:
                timeout = max(0.0, due[0][0] - time.monotonic()) if due else None
                ready, _, _ = select.select([client, server], [], [], timeout)
                for side in ready:
                    data = side.recv(65536)
                    if not data:
                        return
                    if side is client:
                        if last != "client":
                            with self._lock:
                                self.flights += 1
                        last = "client"
                    else:
                        last = "server"
                    destination = server if side is client else client
                    heapq.heappush(due, (time.monotonic() + self.delay_s, order, destination, data))
                    order += 1
                while due and due[0][0] <= time.monotonic():
                    _, _, destination, data = heapq.heappop(due)
                    destination.sendall(data)

    def count(self) -> int:
        time.sleep(0.02)  # let the relay threads catch up
        with self._lock:
            return self.flights

    def close(self) -> None:
        self._listener.close()


@dataclass
class Outcome:
    result: Any  # what work returned, or the exception it raised
    ms: float  # how long it took, from the common start


def round_trips_per_call(counter: RoundTripCounter, calls: dict[str, Callable[[], object]]) -> dict[str, int]:
    """How many round trips each call took through the counting relay, in order."""
    trips = {}
    for name, call in calls.items():
        before = counter.count()
        call()
        trips[name] = counter.count() - before
    return trips


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


def process_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) of a process on this machine; None where /proc cannot tell
    (another machine's PostgreSQL, another OS)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
