"""A durable, partitioned, append-only event log in one SQLite file.

The local stand-in for Event Hubs: events are assigned a partition by a stable
hash of their partition key, get per-partition sequence numbers (from 0) and
byte offsets, and are kept forever. Readers track their own position
(checkpoints live elsewhere, as with Event Hubs), so several consumer groups
can read the same log independently.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from shared import sqlite_wal

APPEND_WAIT_SECONDS = 30

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    partition INTEGER NOT NULL,
    sequence_number INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    partition_key TEXT,
    body BLOB NOT NULL,
    properties TEXT NOT NULL,
    enqueued_time TEXT NOT NULL,
    PRIMARY KEY (partition, sequence_number)
);
"""


@dataclass(frozen=True)
class OutgoingEvent:
    """An event to append: body bytes, routing key and application properties."""

    body: bytes
    partition_key: str | None = None
    properties: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredEvent:
    """An event as read back, with the positions Event Hubs would give it."""

    partition: int
    sequence_number: int
    offset: int | str  # the local log's byte offset; Event Hubs' own offset string
    partition_key: str | None
    body: bytes
    properties: dict[str, str]
    enqueued_time: datetime

    @property
    def partition_id(self) -> str:
        return str(self.partition)


class LocalEventLog:
    """Append and read events; safe across threads and processes (SQLite locking)."""

    def __init__(self, path: str | Path, partition_count: int = 4) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        # Appends queue here rather than in SQLite's busy handler, whose growing sleeps
        # (1, 2, 5, 10... ms) made one preempted writer delay every publish behind it.
        self._appending = threading.Lock()
        self._watched = False
        with self._connect() as conn:
            conn.executescript(_SCHEMA)
            conn.execute(
                "INSERT OR IGNORE INTO log_meta (key, value) VALUES ('partition_count', ?)",
                (str(partition_count),),
            )
            row = conn.execute(
                "SELECT value FROM log_meta WHERE key = 'partition_count'"
            ).fetchone()
        # An existing log keeps the partition count it was created with, as a hub does.
        self.partition_count = int(row[0])

    def _connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, timeout=APPEND_WAIT_SECONDS, isolation_level=None
            )
            sqlite_wal.configure(conn)
            self._local.conn = conn
        return conn

    @property
    def partition_ids(self) -> list[str]:
        return [str(p) for p in range(self.partition_count)]

    def partition_for(self, partition_key: str | None) -> int:
        if partition_key is None:
            return 0
        digest = hashlib.sha256(partition_key.encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big") % self.partition_count

    def append(self, events: Sequence[OutgoingEvent]) -> list[StoredEvent]:
        """Append all events atomically; returns them with their positions."""
        # As long as SQLite's own busy timeout: a publish then fails as "locked" (503, or
        # left to the outbox relay) instead of waiting behind every other one.
        if not self._appending.acquire(timeout=APPEND_WAIT_SECONDS):
            raise sqlite3.OperationalError(
                "database is locked (appends queued too long)"
            )
        try:
            return self._append(events)
        finally:
            self._appending.release()

    def _append(self, events: Sequence[OutgoingEvent]) -> list[StoredEvent]:
        stored: list[StoredEvent] = []
        conn = self._connect()
        now = datetime.now(UTC)
        conn.execute("BEGIN IMMEDIATE")
        try:
            tails: dict[int, tuple[int, int]] = {}
            for event in events:
                partition = self.partition_for(event.partition_key)
                if partition not in tails:
                    row = conn.execute(
                        "SELECT sequence_number, offset, length(body) FROM events "
                        "WHERE partition = ? ORDER BY sequence_number DESC LIMIT 1",
                        (partition,),
                    ).fetchone()
                    tails[partition] = (row[0] + 1, row[1] + row[2]) if row else (0, 0)
                sequence_number, offset = tails[partition]
                conn.execute(
                    "INSERT INTO events (partition, sequence_number, offset, partition_key, body,"
                    " properties, enqueued_time) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        partition,
                        sequence_number,
                        offset,
                        event.partition_key,
                        event.body,
                        json.dumps(event.properties),
                        now.isoformat(),
                    ),
                )
                tails[partition] = (sequence_number + 1, offset + len(event.body))
                stored.append(
                    StoredEvent(
                        partition,
                        sequence_number,
                        offset,
                        event.partition_key,
                        event.body,
                        dict(event.properties),
                        now,
                    )
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if not self._watched:
            sqlite_wal.watch(self.path)  # the appending process checkpoints the log
            self._watched = True
        return stored

    def read(
        self, partition: int | str, after_sequence: int | None, max_count: int
    ) -> list[StoredEvent]:
        """Events of one partition after a sequence number (None: from the start)."""
        rows = (
            self._connect()
            .execute(
                "SELECT partition, sequence_number, offset, partition_key, body, properties, enqueued_time "
                "FROM events WHERE partition = ? AND sequence_number > ? ORDER BY sequence_number LIMIT ?",
                (
                    int(partition),
                    -1 if after_sequence is None else after_sequence,
                    max_count,
                ),
            )
            .fetchall()
        )
        return [
            StoredEvent(
                row[0],
                row[1],
                row[2],
                row[3],
                bytes(row[4]),
                json.loads(row[5]),
                datetime.fromisoformat(row[6]),
            )
            for row in rows
        ]

    def last_sequence(self, partition: int | str) -> int | None:
        """The newest sequence number in a partition, or None when it is empty."""
        row = (
            self._connect()
            .execute(
                "SELECT MAX(sequence_number) FROM events WHERE partition = ?",
                (int(partition),),
            )
            .fetchone()
        )
        return row[0]

    def last_sequences(self) -> dict[int, int | None]:
        """The newest sequence number of every partition (None when empty): one index
        seek per partition."""
        parts = range(self.partition_count)
        sql = " UNION ALL ".join(
            f"SELECT {p}, MAX(sequence_number) FROM events WHERE partition = {p}"
            for p in parts
        )
        return dict(self._connect().execute(sql).fetchall())

    def data_version(self) -> int:
        """A number that changes when another connection commits to the log (SQLite's
        `PRAGMA data_version`): a cheap "anything new?" before reading. Comparable only
        between calls from one thread, whose connection it belongs to."""
        return self._connect().execute("PRAGMA data_version").fetchone()[0]

    def tail(self, partition: int | str) -> tuple[int | None, datetime | None]:
        """The newest sequence number and its enqueued time, or (None, None) when empty."""
        row = (
            self._connect()
            .execute(
                "SELECT sequence_number, enqueued_time FROM events WHERE partition = ?"
                " ORDER BY sequence_number DESC LIMIT 1",
                (int(partition),),
            )
            .fetchone()
        )
        return (row[0], datetime.fromisoformat(row[1])) if row else (None, None)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
