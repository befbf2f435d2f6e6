"""Transactions and transient-error retry of the write database (real SQLite)."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from shared.sql.db import Database, _sqlite_connect, _SqliteConnection


def impatient_sqlite(path: str) -> Database:
    # A short busy timeout turns a held write lock into "database is locked" at once.
    return Database(
        lambda: _SqliteConnection(
            sqlite3.connect(
                path, timeout=0.05, isolation_level=None, check_same_thread=False
            )
        ),
        "sqlite",
    )


@pytest.fixture
def path(tmp_path) -> str:
    file = str(tmp_path / "t.db")
    impatient_sqlite(file).run(lambda tx: tx.execute("CREATE TABLE t (n INTEGER)"))
    return file


def test_a_failed_transaction_writes_nothing(path):
    db = impatient_sqlite(path)

    def half_then_fail(tx):
        tx.execute("INSERT INTO t VALUES (1)")
        raise ValueError("rule refused")

    with pytest.raises(ValueError):
        db.run(half_then_fail)
    assert db.run(lambda tx: tx.one("SELECT COUNT(*) FROM t")) == (0,)


def test_a_locked_database_is_retried_until_the_lock_is_released(path):
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    threading.Timer(0.3, lambda: holder.execute("COMMIT")).start()
    db = impatient_sqlite(path)
    started = time.monotonic()
    db.run(lambda tx: tx.execute("INSERT INTO t VALUES (2)"), attempts=8)
    assert time.monotonic() - started >= 0.25
    assert db.run(lambda tx: tx.one("SELECT n FROM t")) == (2,)


def test_writers_of_one_process_queue_without_meeting_the_file_lock(path):
    # No retries and a busy timeout of 50 ms against transactions of 5 ms each, eight
    # threads at once: only a queue in the process keeps them from "database is locked".
    db = impatient_sqlite(path)
    failures: list[BaseException] = []

    def writer(n: int) -> None:
        for _ in range(10):
            try:
                with db.transaction() as tx:
                    tx.execute("INSERT INTO t VALUES (?)", (n,))
                    time.sleep(0.005)
            except BaseException as exc:  # noqa: BLE001 - collected for the assertion
                failures.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert db.run(lambda tx: tx.one("SELECT count(*) FROM t")) == (80,)


def test_retries_give_up_after_the_attempts(path):
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            impatient_sqlite(path).run(
                lambda tx: tx.execute("INSERT INTO t VALUES (3)"), attempts=2
            )
    finally:
        holder.execute("ROLLBACK")


def test_statements_are_counted(path):
    db = impatient_sqlite(path)
    db.run(lambda tx: (tx.execute("INSERT INTO t VALUES (1)"), tx.execute("SELECT 1")))
    assert db.statements == 2


class _CommitsThenLosesTheLine(_SqliteConnection):
    """Azure SQL as a client may see it: the COMMIT happened, its acknowledgement did not
    arrive (the driver reports a communication link failure)."""

    def commit(self) -> None:
        super().commit()
        raise _DriverError("08S01", "[08S01] Communication link failure (10054)")


class _DriverError(Exception):
    pass


def test_a_commit_whose_outcome_is_unknown_is_not_run_again(path):
    from shared.sql.db import CommitOutcomeUnknown

    db = Database(
        lambda: _CommitsThenLosesTheLine(
            sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        ),
        "tsql",  # the retry rules of Azure SQL, over a SQLite file
    )
    with pytest.raises(CommitOutcomeUnknown):
        db.run(lambda tx: tx.execute("INSERT INTO t VALUES (7)"))
    check = sqlite3.connect(path)
    assert check.execute("SELECT COUNT(*) FROM t WHERE n = 7").fetchone()[0] == 1
    from shared.availability import is_unavailable

    assert is_unavailable(CommitOutcomeUnknown("lost"))  # answered 503, not 500


def test_read_only_work_does_not_wait_for_a_writer(tmp_path):
    db = Database(_sqlite_connect(str(tmp_path / "w.db")), "sqlite")
    db.run(lambda tx: tx.execute("CREATE TABLE t (n INTEGER)"))
    db.run(lambda tx: tx.execute("INSERT INTO t VALUES (1)"))
    inside, release = threading.Event(), threading.Event()

    def slow_writer(tx):
        tx.execute("UPDATE t SET n = 2")
        inside.set()
        release.wait(10)

    writer = threading.Thread(target=db.run, args=(slow_writer,))
    writer.start()
    try:
        assert inside.wait(10)
        # The writer holds both the process's queue and SQLite's write lock: a read of
        # the outbox (the relay's, the status page's) answers from the last commit.
        started = time.monotonic()
        seen = db.run(lambda tx: tx.one("SELECT n FROM t"), read_only=True)
        assert seen == (1,)
        assert time.monotonic() - started < 1.0
    finally:
        release.set()
        writer.join(10)
    assert db.run(lambda tx: tx.one("SELECT n FROM t"), read_only=True) == (2,)


def test_read_only_work_that_writes_is_refused_and_changes_nothing(tmp_path):
    db = Database(_sqlite_connect(str(tmp_path / "w.db")), "sqlite")
    db.run(lambda tx: tx.execute("CREATE TABLE t (n INTEGER)"))

    def sneaky(tx):
        tx.execute("INSERT INTO t VALUES (1)")

    with pytest.raises(Exception, match="readonly"):
        db.run(sneaky, read_only=True)
    assert db.run(lambda tx: tx.one("SELECT COUNT(*) FROM t")) == (0,)
    # The same connection writes again in the next (read-write) transaction.
    db.run(sneaky)
    assert db.run(lambda tx: tx.one("SELECT COUNT(*) FROM t")) == (1,)
