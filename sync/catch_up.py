"""The catch-up pass: re-drive what a projection left unapplied, from the event log.

The live consumer never dead-letters a transient failure: on its last retry it
stops and leaves its partition's recorded position behind (see `sync.runner`),
while the Event Hubs trigger checkpoints past the batch. This pass, run by a
timer, finds each partition whose position has not advanced for a while although
the event log holds newer events, reads the gap back from the log and applies it
through the same `process` (idempotent: version guards make a re-applied event a
no-op). A dependency that is still down leaves the gap for the next pass.

`gaps` is pure (tested without I/O); `catch_up` does the reading and writing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.eventlog import StoredEvent
from sync.ports import DeadLetters, Writer
from sync.runner import Delivery, Plan, process, utc

log = logging.getLogger(__name__)

PAGE = 200

Reader = Callable[[str, int, int], list[StoredEvent]]


@dataclass(frozen=True)
class Gap:
    partition: str
    after: int  # the last sequence number the projection applied contiguously
    until: int  # the newest sequence number in the event log when the pass looked


def gaps(
    projection: str,
    positions: list[dict[str, Any]],
    tails: Mapping[str, tuple[int | None, datetime | None]],
    now: datetime,
    stale_after_seconds: float,
) -> list[Gap]:
    """Partitions whose recorded position is behind the log and has not moved lately.

    A partition with no recorded position but events older than the threshold is a gap
    from its start: its first batch went unapplied, and a position is only ever
    created by the batch that starts the partition (or by a rebuild)."""
    recorded = {
        str(doc["partition"]): doc
        for doc in positions
        if doc.get("projection") == projection and doc.get("kind") == "position"
    }
    found = []
    for partition, (tail, tail_time) in tails.items():
        if tail is None:
            continue
        gap = _gap(str(partition), recorded.get(str(partition)), tail, tail_time, now)
        if gap is not None and gap[1] >= stale_after_seconds:
            found.append(gap[0])
    return found


def _gap(
    partition: str,
    doc: dict[str, Any] | None,
    tail: int,
    tail_time: datetime | None,
    now: datetime,
) -> tuple[Gap, float] | None:
    """The partition's gap and how long it has stood still, or None when it has none."""
    if doc is None:
        return Gap(partition, -1, tail), _seconds_since(tail_time, now)
    applied = doc.get("sequenceNumber")
    if applied is None or tail <= applied:
        return None
    moved = doc.get("appliedAt")
    return Gap(partition, applied, tail), _seconds_since(
        datetime.fromisoformat(moved) if moved else None, now
    )


def _seconds_since(moment: datetime | None, now: datetime) -> float:
    """Time elapsed since `moment`; forever when it is unknown."""
    return (now - utc(moment)).total_seconds() if moment else float("inf")


def catch_up(
    projection: str,
    plan: Plan,
    found: list[Gap],
    read: Reader,
    writer: Writer,
    dead_letters: DeadLetters,
) -> dict[str, int]:
    """Apply each gap from the event log; returns events re-driven per partition."""

    def apply(gap: Gap, page: list[StoredEvent], after: int) -> bool:
        # Final attempt: a poison event is dead-lettered; a dependency still failing
        # stops the pass with the position unmoved, for the next one.
        result = process(
            projection,
            plan,
            [_delivery(gap.partition, e) for e in page],
            writer,
            dead_letters,
            final_attempt=True,
            after=after,
        )
        return not result.unapplied

    driven: dict[str, int] = {}
    for gap in found:
        count, after = _drive(projection, gap, read, apply)
        if count:
            log.warning(
                "%s: caught up partition %s: %d event(s) re-driven (%d..%d)",
                projection,
                gap.partition,
                count,
                gap.after + 1,
                after,
            )
        driven[gap.partition] = count
    return driven


def _drive(
    projection: str,
    gap: Gap,
    read: Reader,
    apply: Callable[[Gap, list[StoredEvent], int], bool],
) -> tuple[int, int]:
    """Apply one gap page by page; (events applied, last sequence number applied)."""
    after, count = gap.after, 0
    while after < gap.until:
        page = [
            e
            for e in read(gap.partition, after, PAGE)
            if e.sequence_number <= gap.until
        ]
        if not page:
            break
        # From the start (-1), the log may begin later: older events expired unread.
        if after >= 0 and page[0].sequence_number != after + 1:
            log.error(
                "%s: partition %s events %d..%d are no longer in the event log "
                "(retention); rebuild the projection from the outbox",
                projection,
                gap.partition,
                after + 1,
                page[0].sequence_number - 1,
            )
            break
        if not apply(gap, page, after):
            break
        after = page[-1].sequence_number
        count += len(page)
    return count, after


def _delivery(partition: str, event: StoredEvent) -> Delivery:
    return Delivery(
        event.body,
        partition,
        event.sequence_number,
        event.offset,
        utc(event.enqueued_time),
        event.properties,
    )


def run(now: datetime | None = None) -> dict[str, dict[str, int]]:
    """One pass over every projection (the timer function's body)."""
    from datetime import UTC

    from shared import config
    from shared.cosmos import sync_container
    from shared.publisher import publisher
    from sync.cosmos_writer import CosmosWriter
    from sync.dead_letters import dead_letters
    from sync.projections import PROJECTIONS
    from sync.status import recorded_positions
    from sync.telemetry import record_lag

    now = now or datetime.now(UTC)
    stale_after = float(str(config.get("PROJECTION_CATCH_UP_AFTER_SECONDS")))
    positions = recorded_positions()
    tails = publisher().partition_tails()
    record_lag(positions, tails, now)  # every pass refreshes the cqrs.sync.lag gauge
    out = {}
    for name, plan in PROJECTIONS.items():
        found = gaps(name, positions, tails, now, stale_after)
        if found:
            out[name] = catch_up(
                name,
                plan,
                found,
                publisher().read_partition,
                CosmosWriter(sync_container),
                dead_letters(),
            )
    return out
