"""Connections, transactions and the small T-SQL/SQLite dialect seam.

Production is Azure SQL through pyodbc with an Entra token from the managed
identity. Locally the same statements run on SQLite: both speak DB-API with
`?` parameters, so only the few statements that differ (OUTPUT vs RETURNING,
TOP vs LIMIT) carry a second text, declared side by side in `Sql`.
"""

from __future__ import annotations

import logging
import random
import re
import sqlite3
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from shared import config, sqlite_wal, telemetry

log = logging.getLogger(__name__)

T = TypeVar("T")

ALL_STATEMENTS: list[Sql] = []


@dataclass(frozen=True)
class Sql:
    """One statement: T-SQL is the source; `sqlite` only where SQLite needs other text."""

    tsql: str
    sqlite: str | None = None

    def __post_init__(self) -> None:
        ALL_STATEMENTS.append(
            self
        )  # every T-SQL text is parsed by sqlglot in the tests

    def text(self, dialect: str) -> str:
        return (
            self.sqlite
            if dialect == "sqlite" and self.sqlite is not None
            else self.tsql
        )


QUERY_TIMEOUT_SECONDS = 10
# Retries of one transaction stop once this much time has passed since the first try.
RUN_BUDGET_SECONDS = 20.0


class CommitOutcomeUnknown(ConnectionError):
    """The connection failed during COMMIT: the transaction may or may not have committed."""


# Azure SQL transient errors worth a retry (learn.microsoft.com: "Troubleshoot transient
# connection errors"), plus deadlock victim (1205) and lock timeout (1222).
TRANSIENT_SQL_ERRORS = frozenset(
    {
        1205,
        1222,
        4060,
        4221,
        10053,
        10054,
        10060,
        10928,
        10929,
        18456,
        40143,
        40197,
        40501,
        40540,
        40613,
        40615,
        42108,
        42109,
        49918,
        49919,
        49920,
        233,
        64,
        121,
        20,
    }
)
_SQLSTATE_TRANSIENT = ("08S01", "08001", "HYT00", "HYT01", "40001")
SQL_LOCK_TIMEOUT = 1222
SQL_UNIQUE_VIOLATIONS = frozenset({2627, 2601})  # unique constraint, unique index
# SQLite result codes (sqlite3.Error.sqlite_errorcode): primary code in the low byte.
SQLITE_BUSY, SQLITE_LOCKED = 5, 6
SQLITE_UNIQUE_VIOLATIONS = frozenset({2067, 1555})  # CONSTRAINT_UNIQUE, _PRIMARYKEY


class DatabaseError(Exception):
    """A write-database error recognised by its driver code; the rest of the code catches
    these. Each instance is also of the driver's own class (sqlite3.*, pyodbc.*), with its
    arguments and attributes, for code that looks at the driver's error."""


class UniqueViolation(DatabaseError):
    """A unique key refused the row (email, sku, idempotency key)."""


class TransientDatabaseError(DatabaseError):
    """Worth running the transaction again: a dropped connection, throttling, a deadlock."""


class LockTimeout(TransientDatabaseError):
    """A lock was not granted in time (SQL Server 1222; SQLite busy or locked)."""


def _sql_server_codes(exc: BaseException) -> tuple[str, set[int]]:
    """The SQLSTATE (pyodbc's first argument) and the native error numbers, which the
    driver writes in parentheses in its message."""
    args = getattr(exc, "args", ())
    sqlstate = args[0] if args and isinstance(args[0], str) else ""
    message = " ".join(str(a) for a in args)
    return sqlstate, {int(n) for n in re.findall(r"\((\d+)\)", message)}


def is_transient_pyodbc_error(exc: BaseException) -> bool:
    sqlstate, codes = _sql_server_codes(exc)
    return sqlstate in _SQLSTATE_TRANSIENT or bool(codes & TRANSIENT_SQL_ERRORS)


def _kind(exc: BaseException, dialect: str) -> type[DatabaseError] | None:
    """Which of our errors a driver error is, or None for any other."""
    if dialect == "sqlite":
        code = getattr(exc, "sqlite_errorcode", None)
        if not isinstance(exc, sqlite3.Error) or code is None:
            return None
        if code in SQLITE_UNIQUE_VIOLATIONS:
            return UniqueViolation
        return LockTimeout if code & 0xFF in (SQLITE_BUSY, SQLITE_LOCKED) else None
    _, codes = _sql_server_codes(exc)
    if codes & SQL_UNIQUE_VIOLATIONS:
        return UniqueViolation
    if SQL_LOCK_TIMEOUT in codes:
        return LockTimeout
    return TransientDatabaseError if is_transient_pyodbc_error(exc) else None


_BOTH: dict[tuple[type, type], type[BaseException]] = {}


def _both(
    kind: type[DatabaseError], driver: type[BaseException]
) -> type[BaseException]:
    """The class that is both our `kind` and the driver's class (one per pair: threads
    racing to make it all get the one stored first)."""
    both = _BOTH.get((kind, driver))
    if both is None:
        made = type(
            driver.__name__,
            (kind, driver),
            {
                "__module__": __name__,
                "__qualname__": f"{kind.__name__}.{driver.__name__}",
            },
        )
        both = _BOTH.setdefault((kind, driver), made)
    return both


def translate(exc: BaseException, dialect: str) -> BaseException:
    """Our error for a driver error (an instance of both classes), or `exc` as it is."""
    kind = _kind(exc, dialect)
    if kind is None or isinstance(exc, DatabaseError):
        return exc
    ours = _both(kind, type(exc))(*exc.args)
    ours.__dict__.update(getattr(exc, "__dict__", {}))
    return ours


@contextmanager
def translating(dialect: str) -> Iterator[None]:
    """Raise the driver's errors met inside as our own (see `translate`)."""
    try:
        yield
    except Exception as exc:
        ours = translate(exc, dialect)
        if ours is exc:
            raise
        raise ours from exc


class Transaction:
    """A cursor bound to one open transaction; `rowcount` of the last statement."""

    def __init__(
        self, cursor: Any, dialect: str, database: Database | None = None
    ) -> None:
        self._cursor = cursor
        self.dialect = dialect
        self.rowcount = 0
        self._database = database

    def execute(self, statement: Sql | str, params: Sequence[Any] = ()) -> Transaction:
        sql = statement.text(self.dialect) if isinstance(statement, Sql) else statement
        with translating(self.dialect):
            self._cursor.execute(sql, tuple(params))
        telemetry.sql_statement(sql)
        self.rowcount = self._cursor.rowcount
        if self._database is not None:
            self._database.statements += 1
        return self

    def fetchone(self) -> tuple[Any, ...] | None:
        with translating(self.dialect):
            row = self._cursor.fetchone()
        return tuple(row) if row is not None else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        with translating(self.dialect):
            return [tuple(r) for r in self._cursor.fetchall()]

    def one(
        self, statement: Sql | str, params: Sequence[Any] = ()
    ) -> tuple[Any, ...] | None:
        return self.execute(statement, params).fetchone()

    def value(self, statement: Sql | str, params: Sequence[Any] = ()) -> Any:
        """The first column of the one row a statement always returns (a count, a max)."""
        row = self.one(statement, params)
        if row is None:
            raise LookupError(f"no row from {statement}")
        return row[0]

    def all(
        self, statement: Sql | str, params: Sequence[Any] = ()
    ) -> list[tuple[Any, ...]]:
        return self.execute(statement, params).fetchall()


class Database:
    """One connection per thread, reused across invocations; transactions with retry."""

    def __init__(self, connect: Callable[[], Any], dialect: str) -> None:
        self._connect = connect
        self.dialect = dialect
        self._local = threading.local()
        self._writer = threading.RLock() if dialect == "sqlite" else None
        self.statements = (
            0  # executed so far by this process (benchmarks: statements per command)
        )

    def _connection(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            with translating(self.dialect):
                conn = self._connect()
            self._local.conn = conn
        return conn

    def _discard(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with suppress(Exception):  # already broken; closing is best effort
                conn.close()

    @contextmanager
    def transaction(self, *, read_only: bool = False) -> Iterator[Transaction]:
        """One transaction. `read_only` work never queues behind writers, nor they
        behind it: Azure SQL's reads take no locks (READ_COMMITTED_SNAPSHOT, on by
        default there); on SQLite it reads the write-ahead log's snapshot without the
        write lock, and `query_only` refuses any write it would attempt (except while
        SQLite recovers the log after a crash, which every connection waits for)."""
        with nullcontext() if read_only else self._sqlite_writer():
            conn = self._connection()
            with translating(self.dialect):
                cursor = conn.cursor()
                if self.dialect == "sqlite":
                    conn.begin(read_only)
            try:
                yield Transaction(cursor, self.dialect, self)
                self._commit(conn)
            except BaseException:
                try:
                    conn.rollback()
                except Exception:  # noqa: BLE001 - the connection is gone; drop it
                    self._discard()
                raise
            finally:
                # A discarded connection refuses this; the error already raised stands.
                with suppress(Exception):
                    cursor.close()

    @contextmanager
    def _sqlite_writer(self) -> Iterator[None]:
        """SQLite's file lock, queued in this process: the threads of one host wait on
        a lock that wakes one of them as soon as it is free. Left to SQLite's busy
        handler, a waiter sleeps 1, 2, 5, 10, 20... ms between tries, so one preempted
        writer turned a millisecond's wait into tens of them for every command queued
        behind it. (Azure SQL queues lock waits itself.)"""
        if self._writer is None:
            yield
            return
        if not self._writer.acquire(timeout=SQLITE_LOCK_WAIT_SECONDS):
            raise LockTimeout("SQLite database is locked by this process's writers")
        try:
            yield
        finally:
            self._writer.release()

    def _commit(self, conn: Any) -> None:
        try:
            with translating(self.dialect):
                conn.commit()
        except TransientDatabaseError as exc:
            if self.dialect == "sqlite":
                raise  # SQLite did not commit: running the work again is safe
            # The commit may have happened with its acknowledgement lost: running the
            # work again could apply it twice, so it is not retried (a 503).
            raise CommitOutcomeUnknown(str(exc)) from exc

    @telemetry.sql_transaction
    def run(
        self,
        work: Callable[[Transaction], T],
        attempts: int = 5,
        budget_seconds: float = RUN_BUDGET_SECONDS,
        *,
        read_only: bool = False,
    ) -> T:
        """Run `work` in one transaction, retrying the whole of it on transient errors
        while attempts and the time budget last (a request must answer, 503 if need be).
        Work that only reads says so (`read_only`): it then takes no write lock."""
        deadline = time.monotonic() + budget_seconds
        for attempt in range(1, attempts + 1):
            try:
                with self.transaction(read_only=read_only) as tx:
                    return work(tx)
            except TransientDatabaseError as exc:
                if attempt == attempts:
                    raise
                if self.dialect != "sqlite":
                    self._discard()  # a transient fault may have broken the connection
                delay = min(2.0, 0.05 * 2**attempt) * (0.5 + random.random())
                if time.monotonic() + delay >= deadline:
                    raise
                log.warning(
                    "transient SQL error (attempt %d/%d), retrying in %.2fs: %s",
                    attempt,
                    attempts,
                    delay,
                    exc,
                )
                time.sleep(delay)
        raise AssertionError("unreachable")


def utcnow() -> datetime:
    """Now, at the millisecond precision DATETIME2(3) keeps, so what we publish equals what we store."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def db_time(value: datetime) -> str:
    """Datetimes travel as ISO-8601 UTC text: DATETIME2 converts it, SQLite stores it as is."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds")


def from_db_time(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC)
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


# As long as SQLite's own busy timeout below: a request's budget ends first anyway.
SQLITE_LOCK_WAIT_SECONDS = 10


def _sqlite_connect(path: str) -> Callable[[], _SqliteConnection]:
    def connect() -> _SqliteConnection:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            path,
            timeout=SQLITE_LOCK_WAIT_SECONDS,
            isolation_level=None,
            check_same_thread=False,
        )
        sqlite_wal.configure(conn)
        conn.execute("PRAGMA foreign_keys=ON")
        return _SqliteConnection(conn, path)

    return connect


class _SqliteConnection:
    """sqlite3 in autocommit mode with explicit BEGIN: commit/rollback act on what BEGIN opened."""

    def __init__(self, conn: sqlite3.Connection, path: str | None = None) -> None:
        self._conn = conn
        self._unwatched = path  # the file, until this connection's first write
        self._query_only = False

    def cursor(self) -> sqlite3.Cursor:
        return self._conn.cursor()

    def begin(self, read_only: bool) -> None:
        """A writer takes the write lock up front: two SQLite writers that both read
        first would otherwise deadlock on upgrade instead of queueing. A reader takes
        none, and `query_only`, switched on for it and off for the next writer, refuses
        its writes."""
        if read_only != self._query_only:
            self._conn.execute(f"PRAGMA query_only={'ON' if read_only else 'OFF'}")
            self._query_only = read_only
        self._conn.execute("BEGIN" if read_only else "BEGIN IMMEDIATE")

    def commit(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("COMMIT")
            if self._unwatched is not None and self._conn.total_changes:
                sqlite_wal.watch(self._unwatched)  # a writer checkpoints what it writes
                self._unwatched = None

    def rollback(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    def close(self) -> None:
        self._conn.close()


LOCK_TIMEOUT_MS = 10_000
SQL_COPT_SS_ACCESS_TOKEN = (
    1256  # msodbcsql.h: pass an Entra access token instead of a password
)


def _token_struct(token: str) -> bytes:
    raw = token.encode("utf-16-le")
    return struct.pack(f"<I{len(raw)}s", len(raw), raw)


def _pyodbc_connect(
    connection_string: str, use_token: bool, login_timeout: int = 30
) -> Callable[[], Any]:
    def connect() -> Any:
        import pyodbc  # lazily: its wheel needs unixODBC, which only SQL deployments install

        attrs = {}
        if use_token:
            from shared.identity import credential

            token = (
                credential().get_token("https://database.windows.net/.default").token
            )
            attrs[SQL_COPT_SS_ACCESS_TOKEN] = _token_struct(token)
        conn = pyodbc.connect(
            connection_string,
            attrs_before=attrs,
            autocommit=False,
            timeout=login_timeout,
        )
        # A blocked statement fails after 10 s (error 1222, retried) instead of holding
        # the request until the function times out.
        conn.execute(f"SET LOCK_TIMEOUT {LOCK_TIMEOUT_MS}")
        conn.commit()
        # And no statement runs longer than this (the driver cancels it: a 503).
        conn.timeout = QUERY_TIMEOUT_SECONDS
        return conn

    return connect


def azure_sql_connection_string(server: str, database: str, driver: str) -> str:
    return (
        f"Driver={{{driver}}};Server=tcp:{server},1433;Database={database};"
        "Encrypt=yes;TrustServerCertificate=no;Connection Timeout=30"
    )


@cache
def database() -> Database:
    """The write database of this worker process, chosen by configuration."""
    if conn_str := config.get("SQL_CONNECTION_STRING"):
        return Database(_pyodbc_connect(conn_str, use_token=False), "tsql")
    if server := config.get("SQL_SERVER"):
        conn_str = azure_sql_connection_string(
            server, config.get("SQL_DATABASE") or "", config.require("SQL_DRIVER")
        )
        return Database(_pyodbc_connect(conn_str, use_token=True), "tsql")
    return Database(_sqlite_connect(config.require("SQLITE_PATH")), "sqlite")
