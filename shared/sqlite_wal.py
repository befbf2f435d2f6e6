"""Write-ahead-log checkpoints of the local SQLite files, off the commit path.

SQLite folds its write-ahead log back into the database file in the commit that takes
the log past 1,000 pages: that commit copies the pages and syncs the file (about 10 ms),
and every writer queued behind it waits as long. At 100 commands/s that was every half
second, for the SQL database and the event log alike. Azure SQL and Event Hubs do this
work in the background, away from the request; so do the stand-ins: their connections
raise the automatic threshold to a safety net, and one thread in each process that
writes a file runs PASSIVE checkpoints of it, which never wait for a reader or block a
writer.

Only writers checkpoint: a checkpoint briefly holds locks that every reader and writer
of the file may have to wait for, and the processes that only read (the projections'
workers) run at idle priority locally, where a checkpoint preempted mid-way would stall
the HTTP functions' commits behind it.
"""

from __future__ import annotations

import logging
import sqlite3
import sys
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

# A checkpoint runs once the log holds this much (SQLite's default: 1,000 pages of 4 KiB).
CHECKPOINT_BYTES = 4 * 1024 * 1024
INTERVAL_SECONDS = 0.2
# Should the background checkpoints fall behind (a process starved of CPU), a commit
# checkpoints as SQLite always does once the log reaches this many pages (64 MiB).
SAFETY_NET_PAGES = 16_000
WAL_FRAME_HEADER_BYTES = 24


def configure(conn: sqlite3.Connection) -> None:
    """Put a connection in WAL mode with its checkpoints left to a writer's thread."""
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"PRAGMA wal_autocheckpoint={SAFETY_NET_PAGES}")


def watch(path: str | Path) -> None:
    """This process writes `path`: checkpoint it in the background from now on (idempotent)."""
    _checkpointer.watch(Path(path))


def watched() -> set[Path]:
    """The files this process checkpoints."""
    return _checkpointer.watched()


def checkpoints(path: str | Path) -> int:
    """How many checkpoints this process's thread has run on `path` (ended, not begun)."""
    return _checkpointer.runs.get(Path(path), 0)


def pending_bytes(path: str | Path) -> int:
    """What the log holds that is committed and not yet copied into the database.

    Read from the WAL-index header in the `-shm` file, whose layout is part of SQLite's
    file format (https://www.sqlite.org/walformat.html): the page size at byte 14, the
    last committed frame (mxFrame) at 16 and the last one copied (nBackfill) at 96, in
    the machine's byte order. The log file's size would not do: it keeps its length
    when SQLite starts it afresh."""
    try:
        with open(f"{path}-shm", "rb") as shm:
            head = shm.read(100)
    except FileNotFoundError:
        return 0
    if len(head) < 100:
        return 0
    page = int.from_bytes(head[14:16], sys.byteorder)
    page = 65536 if page == 1 else page
    committed = int.from_bytes(head[16:20], sys.byteorder)
    copied = int.from_bytes(head[96:100], sys.byteorder)
    return max(0, committed - copied) * (page + WAL_FRAME_HEADER_BYTES)


def checkpoint_if_due(conn: sqlite3.Connection, path: Path) -> bool:
    """Checkpoint `path` once `CHECKPOINT_BYTES` wait to be copied; True if it ran."""
    if pending_bytes(path) < CHECKPOINT_BYTES:
        return False
    # PASSIVE copies what no reader still needs and returns: writers go on meanwhile, and
    # the next one starts the log afresh once everything in it has been copied.
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return True


class _Checkpointer:
    """One daemon thread checkpointing every SQLite file the process writes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connections: dict[Path, sqlite3.Connection | None] = {}
        self._thread: threading.Thread | None = None
        self.runs: dict[Path, int] = {}

    def watched(self) -> set[Path]:
        with self._lock:
            return set(self._connections)

    def watch(self, path: Path) -> None:
        with self._lock:
            if path in self._connections:
                return
            self._connections[path] = None
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="sqlite-wal-checkpoint", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(INTERVAL_SECONDS)
            with self._lock:
                watched = list(self._connections.items())
            for path, conn in watched:
                self._visit(path, conn)

    def _visit(self, path: Path, conn: sqlite3.Connection | None) -> None:
        if not path.exists():  # deleted (a test's temporary files): stop watching it
            with self._lock:
                self._connections.pop(path, None)
                self.runs.pop(path, None)
            if conn is not None:
                conn.close()
            return
        try:
            if conn is None:
                conn = sqlite3.connect(
                    path, isolation_level=None, check_same_thread=False
                )
                conn.execute(f"PRAGMA wal_autocheckpoint={SAFETY_NET_PAGES}")
                with self._lock:
                    self._connections[path] = conn
            if checkpoint_if_due(conn, path):
                self.runs[path] = self.runs.get(path, 0) + 1
        except sqlite3.Error as exc:
            # Busy (another process's checkpoint) or a passing fault: the next round retries.
            log.debug("checkpoint of %s skipped: %s", path, exc)


_checkpointer = _Checkpointer()
