"""The local SQLite files' write-ahead logs are checkpointed in the background (shared/sqlite_wal.py)."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from shared import sqlite_wal
from shared.eventlog import LocalEventLog, OutgoingEvent
from shared.sql.db import Database, _sqlite_connect


def _pragma(conn: sqlite3.Connection, name: str) -> object:
    return conn.execute(f"PRAGMA {name}").fetchone()[0]


def test_the_stand_ins_connections_leave_checkpoints_to_the_background(
    tmp_path: Path,
) -> None:
    sql = Database(_sqlite_connect(str(tmp_path / "orders.db")), "sqlite")
    events = LocalEventLog(tmp_path / "events.db", 2)
    for conn in (sql._connection()._conn, events._connect()):
        assert _pragma(conn, "journal_mode") == "wal"
        assert _pragma(conn, "synchronous") == 1  # NORMAL
        # SQLite's own 1,000-page checkpoint in the commit is pushed back to a safety net.
        assert _pragma(conn, "wal_autocheckpoint") == sqlite_wal.SAFETY_NET_PAGES


def test_only_a_process_that_writes_a_file_checkpoints_it(tmp_path: Path) -> None:
    # Readers stay out of the checkpoints: the projections' workers only read the event
    # log, at idle priority, and must never hold a lock the HTTP functions wait for.
    sql_path, log_path = tmp_path / "orders.db", tmp_path / "events.db"
    sql = Database(_sqlite_connect(str(sql_path)), "sqlite")
    sql.run(lambda tx: tx.one("SELECT 1"), read_only=True)
    events = LocalEventLog(log_path, 2)
    assert events.read(0, None, 10) == []
    assert {sql_path, log_path}.isdisjoint(sqlite_wal.watched())

    sql.run(lambda tx: tx.execute("CREATE TABLE t (n INTEGER)"))
    sql.run(lambda tx: tx.execute("INSERT INTO t VALUES (1)"))
    events.append([OutgoingEvent(b"{}", "key", {})])
    assert {sql_path, log_path} <= sqlite_wal.watched()


def _wait_until(condition, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_each_round_of_writes_is_copied_and_the_log_restarted(
    tmp_path: Path,
) -> None:
    path = tmp_path / "data.db"
    conn = sqlite3.connect(path, isolation_level=None)
    sqlite_wal.configure(conn)
    sqlite_wal.watch(path)
    conn.execute("CREATE TABLE t (b BLOB)")
    blob = 64 * 1024
    per_round = int(1.5 * sqlite_wal.CHECKPOINT_BYTES) // blob
    rounds = 4
    for done in range(1, rounds + 1):
        before = sqlite_wal.checkpoints(path)
        conn.execute("BEGIN")
        for _ in range(per_round):
            conn.execute("INSERT INTO t VALUES (randomblob(?))", (blob,))
        conn.execute("COMMIT")
        assert _wait_until(lambda n=before: sqlite_wal.checkpoints(path) > n), (
            f"round {done}: nothing checkpointed the log"
        )
        # Only a checkpoint moves the pages from the log into the database file.
        assert path.stat().st_size >= done * per_round * blob
    # Each round's commit started the log afresh: it holds about one round, where
    # without the background checkpoints it would hold all four (the safety net is 64 MiB).
    wal = Path(f"{path}-wal").stat().st_size
    assert wal < 2 * per_round * blob, wal
    assert rounds * per_round * blob > 3 * wal


def test_the_log_restarts_while_commits_land_during_the_checkpoints(
    tmp_path: Path,
) -> None:
    # Commits every few milliseconds: most checkpoints end with a commit or two not yet
    # copied. The rounds go on while the log is long, so one soon finds it all copied
    # and the next writer starts the log afresh, long before SQLite's own net.
    path = tmp_path / "data.db"
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    sqlite_wal.configure(conn)
    conn.execute("CREATE TABLE t (b BLOB)")
    sqlite_wal.watch(path)
    bound = sqlite_wal.SAFETY_NET_PAGES // 2  # frames: half the net
    longest, restarts, written, last = 0, 0, 0, 0
    deadline = time.monotonic() + 60
    while written < 1.5 * bound and time.monotonic() < deadline:
        conn.execute("INSERT INTO t VALUES (randomblob(100000))")  # ~25 frames
        committed = sqlite_wal.log_frames(path)
        if committed < last:
            restarts += 1
            written += committed
        else:
            written += committed - last
        longest, last = max(longest, committed), committed
        time.sleep(0.005)
    assert written >= 1.5 * bound, written
    assert restarts >= 1 and longest < bound, (restarts, longest, written)


@pytest.mark.parametrize("page_size", [4096, 65536])
def test_a_small_log_is_left_alone(tmp_path: Path, page_size: int) -> None:
    path = tmp_path / "data.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA page_size={page_size}")
    sqlite_wal.configure(conn)
    conn.execute("CREATE TABLE t (b BLOB)")
    conn.execute("INSERT INTO t VALUES (randomblob(1000))")
    assert sqlite_wal.checkpoint_if_due(conn, path) is None
    assert sqlite_wal.checkpoint_if_due(conn, tmp_path / "missing.db") is None
    size = path.stat().st_size
    for _ in range(sqlite_wal.CHECKPOINT_BYTES // 60_000 + 1):
        conn.execute("INSERT INTO t VALUES (randomblob(60000))")
    result = sqlite_wal.checkpoint_if_due(conn, path)
    assert result is not None
    frames, copied = result
    assert frames == copied and frames * (page_size + 24) >= sqlite_wal.CHECKPOINT_BYTES
    assert path.stat().st_size > size + sqlite_wal.CHECKPOINT_BYTES // 2


def test_the_checkpointer_never_opens_the_shared_memory_file(tmp_path: Path) -> None:
    # Closing any descriptor of a file drops every POSIX lock the process holds on it:
    # SQLite's locks on `-shm` went with one, and another process rebuilt the index
    # under the HTTP host's mapping of it (SIGBUS). The WAL's size comes from stat.
    source = Path(sqlite_wal.__file__).read_text()
    assert "open(" not in source and "os.stat(" in source


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="Linux scheduling policy")
def test_a_writer_at_idle_priority_leaves_the_checkpoints_to_others(
    tmp_path: Path,
) -> None:
    # The timers' worker writes after an outage (the relay), at idle priority locally:
    # preempted mid-checkpoint, it would hold locks the HTTP functions' commits wait on.
    # A thread of its own takes the policy (it applies per thread, and is not undone).
    path = tmp_path / "orders.db"
    db = Database(_sqlite_connect(str(path)), "sqlite")

    def idle_writer() -> None:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        db.run(lambda tx: tx.execute("CREATE TABLE t (n INTEGER)"))
        db.run(lambda tx: tx.execute("INSERT INTO t VALUES (1)"))

    writer = threading.Thread(target=idle_writer)
    writer.start()
    writer.join(30)
    assert db.run(lambda tx: tx.value("SELECT n FROM t"), read_only=True) == 1
    assert path not in sqlite_wal.watched()
    # The same write at normal priority makes this process the file's checkpointer.
    db.run(lambda tx: tx.execute("INSERT INTO t VALUES (2)"))
    assert path in sqlite_wal.watched()
