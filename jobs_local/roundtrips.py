"""Counts network round trips between a client and PostgreSQL: a TCP relay on loopback that
counts client flights (each time the client speaks after the server has answered)."""

from __future__ import annotations

import select
import socket
import threading
import time

from psycopg.conninfo import conninfo_to_dict, make_conninfo


class RoundTripCounter:
    def __init__(self, conninfo: str) -> None:
        params = conninfo_to_dict(conninfo)
        host = str(params.get("host") or "127.0.0.1")
        port = int(params.get("port") or 5432)
        self._host, self._port = host, port
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
        return socket.create_connection((self._host, self._port))

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client, self._connect_upstream()), daemon=True).start()

    def _relay(self, client: socket.socket, server: socket.socket) -> None:
        last = None
        with client, server:
            while True:
                ready, _, _ = select.select([client, server], [], [])
                for side in ready:
                    data = side.recv(65536)
                    if not data:
                        return
                    if side is client:
                        if last != "client":
                            with self._lock:
                                self.flights += 1
                        last = "client"
                        server.sendall(data)
                    else:
                        last = "server"
                        client.sendall(data)

    def count(self) -> int:
        time.sleep(0.02)  # let the relay threads catch up
        with self._lock:
            return self.flights

    def close(self) -> None:
        self._listener.close()
