"""Driver errors become the project's own at the Database boundary (real SQLite; SQL
Server's errors as pyodbc reports them: SQLSTATE first, the native number in the text)."""

from __future__ import annotations

import sqlite3

import pytest

from shared.sql.db import (
    Database,
    LockTimeout,
    TransientDatabaseError,
    UniqueViolation,
    _SqliteConnection,
    translate,
)


@pytest.fixture
def db(tmp_path) -> Database:
    path = str(tmp_path / "t.db")
    database = Database(
        lambda: _SqliteConnection(
            sqlite3.connect(
                path, timeout=0.05, isolation_level=None, check_same_thread=False
            )
        ),
        "sqlite",
    )
    database.run(lambda tx: tx.execute("CREATE TABLE t (k TEXT UNIQUE)"))
    return database


def test_a_duplicate_key_is_a_unique_violation_and_still_the_drivers_error(db):
    db.run(lambda tx: tx.execute("INSERT INTO t VALUES ('a')"))
    with pytest.raises(UniqueViolation) as caught:
        db.run(lambda tx: tx.execute("INSERT INTO t VALUES ('a')"))
    assert isinstance(caught.value, sqlite3.IntegrityError)
    assert caught.value.sqlite_errorcode == 2067
    assert "UNIQUE" in str(caught.value)


def test_a_held_write_lock_is_a_lock_timeout(db, tmp_path):
    holder = sqlite3.connect(str(tmp_path / "t.db"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(LockTimeout) as caught:
            db.run(lambda tx: tx.execute("INSERT INTO t VALUES ('b')"), attempts=1)
    finally:
        holder.execute("ROLLBACK")
    assert isinstance(caught.value, TransientDatabaseError)


def test_other_errors_pass_unchanged(db):
    with pytest.raises(sqlite3.OperationalError) as caught:
        db.run(lambda tx: tx.execute("SELECT nope FROM t"))
    assert not isinstance(caught.value, TransientDatabaseError | UniqueViolation)


class FakePyodbcError(Exception):
    """pyodbc's shape: (SQLSTATE, message with the native error number)."""


@pytest.mark.parametrize(
    ("args", "kind"),
    [
        (
            ("23000", "[23000] Violation of UNIQUE KEY constraint (2627)"),
            UniqueViolation,
        ),
        (("23000", "[23000] Cannot insert duplicate key row (2601)"), UniqueViolation),
        (
            ("HYT00", "[HYT00] Lock request time out period exceeded. (1222)"),
            LockTimeout,
        ),
        (
            ("42000", "[42000] was deadlocked (1205) (SQLExecDirectW)"),
            TransientDatabaseError,
        ),
        (("08S01", "[08S01] Communication link failure"), TransientDatabaseError),
        (("23000", "[23000] FOREIGN KEY constraint (547)"), None),
    ],
)
def test_sql_server_errors_are_recognised_by_code(args, kind):
    error = FakePyodbcError(*args)
    ours = translate(error, "tsql")
    if kind is None:
        assert ours is error
        return
    assert type(ours) is not kind and isinstance(ours, kind)
    assert isinstance(ours, FakePyodbcError) and ours.args == args
    assert translate(ours, "tsql") is ours  # translated once
