"""PgBouncer in transaction mode in front of a PostgreSQL server, as RDS Proxy stands in front of
Aurora: each transaction may get any server connection, and a client connection keeps none. The
tests and the bench start one of their own (`pooled`), on a free port, with a small pool.

`python -m jobs_local.pooler` runs one in front of DATABASE_URL (or the embedded database) until
Ctrl-C and prints its URL, for trying the local server through it by hand.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from psycopg.conninfo import conninfo_to_dict, make_conninfo

INSTALL_HINT = "PgBouncer is missing: `make pgbouncer` installs Debian's package (as root)"


def executable() -> str:
    """The pgbouncer program; raises (never skips) when it is not installed."""
    found = shutil.which("pgbouncer") or next(
        (path for path in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.access(path, os.X_OK)), None
    )
    if found is None:
        raise RuntimeError(INSTALL_HINT)
    return found


def free_port() -> int:
    """A TCP port free on loopback now (for the pooler, the tests' local servers)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def pooled(server_url: str, *, pool_size: int = 5, max_clients: int = 1000, log: Path | None = None) -> Iterator[str]:
    """A PgBouncer in transaction mode in front of server_url's server, at most pool_size server
    connections to each database; yields server_url with the pooler's host and port instead. Its
    log is copied to log, if given, when it stops."""
    server = conninfo_to_dict(server_url)
    user = str(server.get("user") or "postgres")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="pgbouncer-") as scratch:
        work = Path(scratch)
        logfile = work / "pgbouncer.log"
        (work / "users.txt").write_text(f'"{user}" "{server.get("password") or ""}"\n')
        backend = f"host={server.get('host') or '127.0.0.1'} port={server.get('port') or 5432}"
        (work / "pgbouncer.ini").write_text(
            "\n".join(
                [
                    "[databases]",
                    f"* = {backend}",  # any database name, to the same server
                    "[pgbouncer]",
                    "listen_addr = 127.0.0.1",
                    f"listen_port = {port}",
                    "unix_socket_dir =",
                    "auth_type = trust",  # loopback only; the server behind checks the password
                    f"auth_file = {work / 'users.txt'}",
                    "pool_mode = transaction",
                    f"default_pool_size = {pool_size}",
                    f"max_db_connections = {pool_size}",
                    f"max_client_conn = {max_clients}",
                    "ignore_startup_parameters = extra_float_digits",
                    "log_connections = 0",
                    "log_disconnections = 0",
                    f"logfile = {logfile}",
                    "",
                ]
            )
        )
        command = [executable(), str(work / "pgbouncer.ini")]
        if os.geteuid() == 0:  # PgBouncer refuses to run as root: as the server's socket's owner, or nobody
            host = str(server.get("host") or "")
            runner = pwd.getpwuid(os.stat(host).st_uid) if host.startswith("/") else pwd.getpwnam("nobody")
            os.chown(work, runner.pw_uid, runner.pw_gid)
            command[1:1] = ["-u", runner.pw_name]
        # Its output to the log file, never a pipe: an unread pipe fills up and stops it.
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
        try:
            wait_until_listening(port, process, logfile, "PgBouncer")
            yield make_conninfo(server_url, host="127.0.0.1", port=str(port))
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if log is not None and logfile.exists():
                shutil.copyfile(logfile, log)


def wait_until_listening(port: int, process: subprocess.Popen[bytes], log: Path, what: str) -> None:
    """Until a program the tests started (PgBouncer, Mosquitto) listens on its port; raises, with
    the end of its log, when it exits first or takes over 10 s."""
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                said = log.read_text() if log.exists() else ""
                raise RuntimeError(f"{what} did not start:\n{said[-2000:]}") from None
            time.sleep(0.05)


def as_url(conninfo: str) -> str:
    """The pooler's conninfo as a URL, one shell word to paste (no password: the pooler trusts
    loopback clients and logs in to the server itself)."""
    parts = conninfo_to_dict(conninfo)
    user, dbname = quote(str(parts.get("user") or "postgres"), safe=""), quote(str(parts.get("dbname") or ""), safe="")
    return f"postgresql://{user}@{parts['host']}:{parts['port']}/{dbname}"


def main() -> None:
    from jobs_local import devdb

    parser = argparse.ArgumentParser(prog="python -m jobs_local.pooler", description=__doc__)
    parser.add_argument("--pool-size", type=int, default=5)
    args = parser.parse_args()
    devdb.exit_on_signals()
    with pooled(devdb.database_url(), pool_size=args.pool_size) as url:
        print(f"export DATABASE_URL={as_url(url)}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
