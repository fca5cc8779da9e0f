"""One PostgreSQL connection per container, reused across invocations.

Every unit of work is one transaction in one round trip, all-or-nothing: a single statement
(`fetch_one`, what a device call is), or a pipeline of statements with a single sync
(`transaction`), whose cursors the caller reads after the block, once the results are in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, LiteralString

import psycopg
from psycopg import sql
from psycopg.rows import DictRow, dict_row

from jobs_core.errors import DatabaseBusy, DatabaseUnavailable
from jobs_core.settings import Settings, settings

Connection = psycopg.Connection[DictRow]
BUSY = (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled, psycopg.errors.TransactionRollback)


class Database:
    def __init__(
        self,
        conninfo: Callable[[bool], str],
        *,
        role: str = "jobs_runtime",
        connect_timeout_s: int = 5,
        statement_timeout_ms: int = 5000,
    ) -> None:
        """conninfo(refresh) returns a libpq connection string; refresh asks for fresh credentials."""
        self._conninfo = conninfo
        self._role = role
        self._connect_timeout_s = connect_timeout_s
        self._statement_timeout_ms = statement_timeout_ms
        self._conn: Connection | None = None
        self._refresh_credentials = False

    def connection(self) -> Connection:
        """The container's connection: opened on first use, reopened once it is broken."""
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self._conn
        self.close()
        try:
            conn = psycopg.connect(
                self._conninfo(self._refresh_credentials),
                autocommit=True,  # a lone statement is its own transaction; else explicit, or a pipeline's
                row_factory=dict_row,
                connect_timeout=self._connect_timeout_s,
                application_name="iot-jobs",
                # No server-side prepared statements: a transaction pooler (PgBouncer) sends the
                # next statement to another server connection, and RDS Proxy pins on them.
                prepare_threshold=None,
            )
        except psycopg.OperationalError as exc:
            self._refresh_credentials = True  # the secret may have been rotated
            raise DatabaseUnavailable("database unavailable") from exc
        self._conn = conn
        self._refresh_credentials = False
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def fetch_one(self, query: LiteralString, params: Mapping[str, Any]) -> DictRow | None:
        """One statement, its own transaction (the connection is in autocommit): one round trip,
        the cheapest unit of work there is. Returns its first row. The statement brings its own
        role and lock timeout: it calls a device function, whose SET clauses give them (see
        sql/device_calls.sql), as nothing is set on the connection."""
        conn = self.connection()
        with self._failures(conn):
            return conn.execute(query, params).fetchone()

    @contextmanager
    def transaction(
        self, *, role: str | None = None, tenant_id: str | None = None, pipeline: bool = True
    ) -> Iterator[Connection]:
        """One transaction.

        Pipelined (the default), it is one round trip: the statements executed on the yielded
        connection are queued and sent with a single Sync, and their cursors are read after the
        block. Statements up to a Sync form one implicit transaction in PostgreSQL's extended
        protocol: they commit together at the Sync, or the first error skips the rest and rolls
        all back. (No BEGIN/COMMIT needed; what the first statement sets lasts until that Sync.)
        Without the pipeline, an explicit transaction whose statements run at once, for work
        that decides as it goes.

        Its first statement gives it its role (the runtime's unless told), timeouts, time zone and
        tenant (row-level security then shows it that tenant's rows only; none: no tenant's), for
        this transaction only: nothing lasts on the connection, so a transaction pooler may hand
        the next transaction to any server connection; and set in a function, where RDS Proxy does
        not look, so the proxy has nothing to pin."""
        conn = self.connection()
        with self._failures(conn), conn.pipeline() if pipeline else conn.transaction():
            conn.execute(
                "SELECT open_transaction(%s, %s, %s, %s)",  # sql/transactions.sql: why a function
                [
                    role or self._role,
                    str(self._statement_timeout_ms),
                    str(self._statement_timeout_ms // 2),
                    tenant_id or "",
                ],
            )
            yield conn

    @contextmanager
    def _failures(self, conn: Connection) -> Iterator[None]:
        """A lost or refused database is 503 (DatabaseUnavailable); whatever failed is rolled back."""
        try:
            yield
        except BUSY as exc:  # a lock or statement timeout, a deadlock or serialization failure
            self._abandon(conn)
            raise DatabaseBusy("database busy, try again") from exc
        except psycopg.OperationalError as exc:
            self._abandon(conn)
            raise DatabaseUnavailable("database unavailable") from exc
        except BaseException:
            self._abandon(conn)
            raise

    def _abandon(self, conn: Connection) -> None:
        """Roll back whatever the failed block left open, or drop a broken connection."""
        if conn.closed or conn.broken:
            self.close()
            return
        try:
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                conn.execute("ROLLBACK")
        except psycopg.Error:
            self.close()


def conninfo_from(config: Settings) -> Callable[[bool], str]:
    """Where the database is: DATABASE_URL locally, the Secrets Manager secret in the cloud."""
    if config.database_url:
        url = config.database_url
        return lambda refresh: url
    arn = config.database_secret_arn
    assert arn is not None  # Settings guarantees one of the two

    def from_secret(refresh: bool) -> str:
        from aws_lambda_powertools.utilities import parameters

        secret: Any = parameters.get_secret(arn, transform="json", max_age=config.secret_max_age_s, force_fetch=refresh)
        return psycopg.conninfo.make_conninfo(
            host=config.database_host or secret["host"],  # the RDS Proxy endpoint, when there is one
            port=secret.get("port", 5432),
            dbname=secret.get("dbname", "postgres"),
            user=secret["username"],
            password=secret["password"],
            sslmode=config.database_sslmode,
        )

    return from_secret


def sql_list(values: list[str]) -> sql.Composable:
    """Values as a list of SQL literals, for `IN (...)`: statements built from the state machine's
    table once, at import, keep constants the planner can match against partial indexes."""
    return sql.SQL(", ").join(sql.Literal(value) for value in values)


_database: Database | None = None


def database() -> Database:
    """The container's database, created on first use."""
    global _database
    if _database is None:
        config = settings()
        _database = Database(
            conninfo_from(config),
            role=config.runtime_role,
            connect_timeout_s=config.connect_timeout_s,
            statement_timeout_ms=config.statement_timeout_ms,
        )
    return _database


def use_database(replacement: Database | None) -> Database | None:
    """Replace the container's database (None: create it anew from the settings on next use), for
    the local stand-ins, tests and the bench; returns the one it replaced, not closed."""
    global _database
    previous, _database = _database, replacement
    return previous
