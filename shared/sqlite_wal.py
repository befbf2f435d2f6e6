"""Write-ahead-log checkpoints of the local SQLite files, off the commit path.

SQLite folds its write-ahead log back into the database file in the commit that takes
the log past 1,000 pages: that commit copies the pages and syncs the file (about 10 ms),
and every writer queued behind it waits as long. At 100 commands/s that was every half
second, for the SQL database and the event log alike. Azure SQL and Event Hubs do this
work in the background, away from the request; so do the stand-ins: their connections
raise the automatic threshold to a safety net, and one thread in each process that
writes a file runs PASSIVE checkpoints of it, which never wait for a reader or block a
writer.

Only writers at normal priority checkpoint: a checkpoint briefly holds locks that every
reader and writer of the file may have to wait for. Locally the projections' workers and
the timers (the relay writes after an outage) run at idle priority, and a checkpoint of
theirs preempted mid-way would stall the HTTP functions' commits behind it.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

# Checkpoints run while the log is this long (SQLite's default: 1,000 pages of 4 KiB).
CHECKPOINT_BYTES = 4 * 1024 * 1024
INTERVAL_SECONDS = 0.2
# While a long log still holds frames not copied, the next round comes this soon: the
# rounds then copy a little each, and one ends with nothing left before a commit lands.
FOLLOW_UP_SECONDS = 0.02
# Should no background checkpoint run (no writer at normal priority, or one starved of
# CPU), a commit checkpoints as SQLite always does once the log reaches this many pages
# (62.5 MiB of 4 KiB pages).
SAFETY_NET_PAGES = 16_000
WAL_FRAME_HEADER_BYTES = 24


def configure(conn: sqlite3.Connection) -> None:
    """Put a connection in WAL mode with its checkpoints left to a writer's thread."""
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"PRAGMA wal_autocheckpoint={SAFETY_NET_PAGES}")


def watch(path: str | Path) -> None:
    """This process writes `path`: checkpoint it in the background from now on
    (idempotent), unless the process runs at idle priority."""
    if not _at_idle_priority():
        _checkpointer.watch(Path(path))


def _at_idle_priority() -> bool:
    policy = getattr(os, "sched_getscheduler", None)  # Linux only
    return policy is not None and policy(0) == getattr(os, "SCHED_IDLE", None)


def watched() -> set[Path]:
    """The files this process checkpoints."""
    return _checkpointer.watched()


def checkpoints(path: str | Path) -> int:
    """How many checkpoints this process's thread has run on `path` (ended, not begun)."""
    return _checkpointer.runs.get(Path(path), 0)


def _log_frames(path: str | Path) -> tuple[int, int, int]:
    """(frames committed to the log, frames copied into the database, bytes per frame).

    Read from the WAL-index header in the `-shm` file, whose layout is part of SQLite's
    file format (https://www.sqlite.org/walformat.html): the page size at byte 14 (1
    for 65,536), the last committed frame (mxFrame) at 16 and the last one copied
    (nBackfill) at 96, in the machine's byte order. A read racing an update is off by a
    round at worst: the next round sees it settled."""
    try:
        with open(f"{path}-shm", "rb") as shm:
            head = shm.read(100)
    except FileNotFoundError:
        return 0, 0, 0
    if len(head) < 100:
        return 0, 0, 0
    page = int.from_bytes(head[14:16], sys.byteorder)
    page = 65536 if page == 1 else page
    committed = int.from_bytes(head[16:20], sys.byteorder)
    copied = int.from_bytes(head[96:100], sys.byteorder)
    return committed, min(copied, committed), page + WAL_FRAME_HEADER_BYTES


def pending_bytes(path: str | Path) -> int:
    """What the log holds that is committed and not yet copied into the database."""
    committed, copied, frame = _log_frames(path)
    return (committed - copied) * frame


def checkpoint_if_due(conn: sqlite3.Connection, path: Path) -> bool:
    """Checkpoint `path` while its log is `CHECKPOINT_BYTES` long or more and holds
    frames not yet copied; True if a checkpoint ran to its end."""
    committed, copied, frame = _log_frames(path)
    if copied >= committed or committed * frame < CHECKPOINT_BYTES:
        return False
    # PASSIVE copies what no reader still needs and returns; writers go on meanwhile.
    # Under a steady load a commit lands during most checkpoints, and the log restarts
    # only when a writer finds it all copied: so rounds go on, FOLLOW_UP_SECONDS apart,
    # while the log is long (its length, not what is left to copy).
    busy, _, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return busy == 0


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
        pause = INTERVAL_SECONDS
        while True:
            time.sleep(pause)
            with self._lock:
                watched = list(self._connections.items())
            ran = [self._visit(path, conn) for path, conn in watched]
            pause = FOLLOW_UP_SECONDS if any(ran) else INTERVAL_SECONDS

    def _visit(self, path: Path, conn: sqlite3.Connection | None) -> bool:
        """True when a checkpoint ran (the log is long: another round is due soon)."""
        if not path.exists():  # deleted (a test's temporary files): stop watching it
            with self._lock:
                self._connections.pop(path, None)
                self.runs.pop(path, None)
            if conn is not None:
                conn.close()
            return False
        try:
            if conn is None:
                # mode=rw: a file deleted meanwhile is not created again, empty.
                conn = sqlite3.connect(
                    f"{path.absolute().as_uri()}?mode=rw",
                    uri=True,
                    isolation_level=None,
                    check_same_thread=False,
                )
                conn.execute(f"PRAGMA wal_autocheckpoint={SAFETY_NET_PAGES}")
                with self._lock:
                    self._connections[path] = conn
            if checkpoint_if_due(conn, path):
                self.runs[path] = self.runs.get(path, 0) + 1
                return True
        except sqlite3.Error as exc:
            # A passing fault (the file going away, a full disk): the next round retries.
            log.debug("checkpoint of %s skipped: %s", path, exc)
        return False


_checkpointer = _Checkpointer()
