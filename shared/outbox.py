"""The transactional outbox: events are written with the rows that caused them, then published.

`record` runs inside the command's transaction. After commit, `publish_pending`
sends the new events and marks them sent; if the transport is down the command
still succeeds and the timer-triggered relay (`relay`) publishes later. Rows are
never deleted: the outbox is the log projections are rebuilt from.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import timedelta

from shared import telemetry
from shared.events import Event
from shared.publisher import EventPublisher
from shared.sql.db import Database, Sql, Transaction, db_time, from_db_time, utcnow

log = logging.getLogger(__name__)

INSERT_EVENT = Sql(
    tsql="INSERT INTO outbox (event_id, event_type, aggregate_type, aggregate_id, aggregate_version,"
    " partition_key, payload, occurred_at, traceparent, tracestate) OUTPUT INSERTED.position"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    sqlite="INSERT INTO outbox (event_id, event_type, aggregate_type, aggregate_id, aggregate_version,"
    " partition_key, payload, occurred_at, traceparent, tracestate)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING position",
)
SELECT_UNSENT = Sql(
    tsql="SELECT position, payload, traceparent, tracestate FROM outbox WHERE sent_at IS NULL"
    " AND occurred_at <= ? ORDER BY position OFFSET 0 ROWS FETCH NEXT ? ROWS ONLY",
    sqlite="SELECT position, payload, traceparent, tracestate FROM outbox WHERE sent_at IS NULL"
    " AND occurred_at <= ? ORDER BY position LIMIT ?",
)
# What the relay has not published yet (the outbox gauges); the filtered index covers it.
SELECT_BACKLOG = Sql(
    "SELECT COUNT(*), MIN(occurred_at) FROM outbox WHERE sent_at IS NULL"
)
MARK_SENT = "UPDATE outbox SET sent_at = ? WHERE position IN ({}) AND sent_at IS NULL"
SELECT_RANGE = Sql(
    tsql="SELECT position, payload FROM outbox WHERE position > ? ORDER BY position OFFSET 0 ROWS FETCH NEXT ? ROWS ONLY",
    sqlite="SELECT position, payload FROM outbox WHERE position > ? ORDER BY position LIMIT ?",
)
COUNT_UNSENT = "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL"
MAX_POSITION = "SELECT MAX(position) FROM outbox"


def record(tx: Transaction, events: Sequence[Event]) -> list[Event]:
    """Insert events in the caller's transaction; returns them with their global positions."""
    stored = []
    for event in events:
        row = tx.one(
            INSERT_EVENT,
            (
                event.event_id,
                event.event_type,
                event.aggregate_type,
                event.aggregate_id,
                event.aggregate_version,
                event.partition_key,
                json.dumps(event.to_json(), separators=(",", ":")),
                db_time(event.occurred_at),
                # The request's trace context: the relay continues it (shared.telemetry).
                *telemetry.trace_context(),
            ),
        )
        if row is None:  # OUTPUT / RETURNING answers one row per inserted row
            raise RuntimeError("the outbox insert returned no position")
        stored.append(event.with_position(int(row[0])))
    return stored


def _events(rows: Sequence[tuple]) -> list[Event]:
    return [
        Event.from_bytes(row[1].encode("utf-8")).with_position(int(row[0]))
        for row in rows
    ]


def _placeholders(count: int) -> str:
    return ", ".join("?" * count)


def _publish_rows(
    db: Database, publisher: EventPublisher, rows: Sequence[tuple]
) -> int:
    events = _events(rows)
    # Rows of SELECT_UNSENT end with the trace context the command recorded.
    created_in = {e.event_id: (row[2], row[3]) for e, row in zip(events, rows)}
    _publish(db, publisher, events, created_in)
    return len(events)


def _publish(
    db: Database,
    publisher: EventPublisher,
    events: Sequence[Event],
    created_in: dict[str, tuple[str | None, str | None]] | None = None,
) -> None:
    if not events:
        return
    with telemetry.publishing(events, created_in):
        publisher.publish(events)
    positions = [e.position for e in events]
    # Marked sent only after the transport accepted them: a crash in between means
    # a re-send (at least once), never a loss.
    db.run(
        lambda tx: tx.execute(
            MARK_SENT.format(_placeholders(len(positions))),
            [db_time(utcnow()), *positions],
        )
    )


def publish_pending(
    db: Database, publisher: EventPublisher, events: Sequence[Event]
) -> bool:
    """Publish what a command just committed. False (and logged) when the transport failed.

    The events are sent as the command holds them (with the positions `record` gave
    them), not read back: one statement after the commit, to mark them sent."""
    try:
        _publish(db, publisher, events)
        return True
    except Exception:
        log.exception(
            "publishing %d event(s) failed; the outbox relay will publish them",
            len(events),
        )
        return False


def relay(
    db: Database,
    publisher: EventPublisher,
    *,
    min_age: timedelta = timedelta(seconds=5),
    batch_size: int = 500,
) -> int:
    """Publish unsent events older than `min_age` (left by a crash or outage), oldest first."""
    telemetry.record_outbox_backlog(lambda: backlog(db))
    cutoff = db_time(utcnow() - min_age)
    total = 0
    while True:
        rows = db.run(
            lambda tx: tx.all(SELECT_UNSENT, (cutoff, batch_size)), read_only=True
        )
        total += _publish_rows(db, publisher, rows)
        if len(rows) < batch_size:
            return total


def backlog(db: Database) -> tuple[int, float | None]:
    """(unsent count, age in seconds of the oldest unsent event or None)."""
    count, oldest = db.run(lambda tx: tx.one(SELECT_BACKLOG), read_only=True)
    oldest_at = from_db_time(oldest)
    if oldest_at is None:
        return int(count), None
    return int(count), max(0.0, (utcnow() - oldest_at).total_seconds())


def read_range(db: Database, after_position: int, limit: int) -> list[Event]:
    """Events after a position, for rebuilding projections."""
    return _events(
        db.run(lambda tx: tx.all(SELECT_RANGE, (after_position, limit)), read_only=True)
    )


def stats(db: Database) -> tuple[int, int | None]:
    """(unsent count, newest position)."""
    return db.run(
        lambda tx: (tx.one(COUNT_UNSENT)[0], tx.one(MAX_POSITION)[0]), read_only=True
    )
