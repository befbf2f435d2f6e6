"""The local SQLite files' write-ahead logs are checkpointed in the background (shared/sqlite_wal.py)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

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


def test_the_log_is_folded_back_and_restarted_while_commits_go_on(
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
        assert sqlite_wal.pending_bytes(path) >= per_round * blob
        assert _wait_until(lambda n=before: sqlite_wal.checkpoints(path) > n), (
            f"round {done}: nothing checkpointed the log"
        )
        assert sqlite_wal.pending_bytes(path) == 0
        # Only a checkpoint moves the pages from the log into the database file.
        assert path.stat().st_size >= done * per_round * blob
    # Each round's commit started the log afresh: it holds about one round, where
    # without the background checkpoints it would hold all four (the safety net is 64 MiB).
    wal = Path(f"{path}-wal").stat().st_size
    assert wal < 2 * per_round * blob, wal
    assert rounds * per_round * blob > 3 * wal


def test_a_small_log_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "data.db"
    conn = sqlite3.connect(path, isolation_level=None)
    sqlite_wal.configure(conn)
    conn.execute("CREATE TABLE t (b BLOB)")
    conn.execute("INSERT INTO t VALUES (randomblob(1000))")
    assert 0 < sqlite_wal.pending_bytes(path) < sqlite_wal.CHECKPOINT_BYTES
    assert not sqlite_wal.checkpoint_if_due(conn, path)
    assert sqlite_wal.pending_bytes(tmp_path / "missing.db") == 0
    assert not sqlite_wal.checkpoint_if_due(conn, tmp_path / "missing.db")
    size = path.stat().st_size
    for _ in range(sqlite_wal.CHECKPOINT_BYTES // 60_000 + 1):
        conn.execute("INSERT INTO t VALUES (randomblob(60000))")
    pending = sqlite_wal.pending_bytes(path)
    assert pending >= sqlite_wal.CHECKPOINT_BYTES
    assert sqlite_wal.checkpoint_if_due(conn, path)
    assert sqlite_wal.pending_bytes(path) == 0
    # The header's figures agree with SQLite's own count of the frames in the log.
    _, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    page = _pragma(conn, "page_size")
    assert frames == copied and pending == frames * (page + 24)
    assert path.stat().st_size > size + sqlite_wal.CHECKPOINT_BYTES // 2
