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
    """How many checkpoints this process's thread has run on `path` that copied
    something new (ended, not begun)."""
    return _checkpointer.runs.get(Path(path), 0)


def log_frames(path: str | Path) -> int:
    """How many frames the log held at this process's last checkpoint of `path`."""
    return _checkpointer.frames.get(Path(path), (0, 0))[0]


def checkpoint_if_due(conn: sqlite3.Connection, path: Path) -> tuple[int, int] | None:
    """Checkpoint `path` while its log file is `CHECKPOINT_BYTES` long or more; the
    frames in the log and those copied, or None if it did not run to its end.

    The size comes from `stat`, which opens nothing: a descriptor of the database's
    files opened and closed beside SQLite's would drop the process's POSIX locks on
    the file (its `-shm` read that way cost the HTTP host a SIGBUS under load). The
    file keeps its length when SQLite starts the log afresh, so a round may find
    nothing to copy; that costs a look at the log's header, no I/O."""
    try:
        size = os.stat(f"{path}-wal").st_size
    except FileNotFoundError:
        return None
    if size < CHECKPOINT_BYTES:
        return None
    # PASSIVE copies what no reader still needs and returns; writers go on meanwhile.
    busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return None if busy else (frames, copied)


class _Checkpointer:
    """One daemon thread checkpointing every SQLite file the process writes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connections: dict[Path, sqlite3.Connection | None] = {}
        self._thread: threading.Thread | None = None
        self.runs: dict[Path, int] = {}
        self.frames: dict[Path, tuple[int, int]] = {}
        self.written: dict[Path, int] = {}  # the log's mtime at the last counted run

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
        """True when the log is still long after a checkpoint: another round soon."""
        if not path.exists():  # deleted (a test's temporary files): stop watching it
            with self._lock:
                self._connections.pop(path, None)
                self.runs.pop(path, None)
                self.frames.pop(path, None)
                self.written.pop(path, None)
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
            written = os.stat(f"{path}-wal").st_mtime_ns  # before: a commit may follow
            result = checkpoint_if_due(conn, path)
            if result is not None:
                frames, copied = result
                if copied and written != self.written.get(path):
                    self.runs[path] = self.runs.get(path, 0) + 1
                    self.written[path] = written
                self.frames[path] = result
                # Under a steady load a commit lands during most checkpoints, and the
                # log restarts only when a writer finds all of it copied: while it is
                # long (not restarted yet), the next round comes FOLLOW_UP_SECONDS on.
                page = conn.execute("PRAGMA page_size").fetchone()[0]
                return frames * (page + WAL_FRAME_HEADER_BYTES) >= CHECKPOINT_BYTES
        except (sqlite3.Error, FileNotFoundError) as exc:
            # A passing fault (the file going away, a full disk): the next round retries.
            log.debug("checkpoint of %s skipped: %s", path, exc)
        return False


_checkpointer = _Checkpointer()
