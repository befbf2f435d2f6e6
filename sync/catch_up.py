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
from sync.runner import DeadLetters, Delivery, Plan, Writer, process, utc

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
        doc = recorded.get(str(partition))
        if doc is None:
            idle = (now - utc(tail_time)).total_seconds() if tail_time else float("inf")
            if idle >= stale_after_seconds:
                found.append(Gap(str(partition), -1, tail))
            continue
        applied = doc.get("sequenceNumber")
        if applied is None or tail <= applied:
            continue
        moved = doc.get("appliedAt")
        idle = (
            (now - utc(datetime.fromisoformat(moved))).total_seconds()
            if moved
            else float("inf")
        )
        if idle >= stale_after_seconds:
            found.append(Gap(str(partition), applied, tail))
    return found


def catch_up(
    projection: str,
    plan: Plan,
    found: list[Gap],
    read: Reader,
    writer: Writer,
    dead_letters: DeadLetters,
) -> dict[str, int]:
    """Apply each gap from the event log; returns events re-driven per partition."""
    driven: dict[str, int] = {}
    for gap in found:
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
            deliveries = [
                Delivery(
                    e.body,
                    gap.partition,
                    e.sequence_number,
                    e.offset,
                    utc(e.enqueued_time),
                    e.properties,
                )
                for e in page
            ]
            # Final attempt: a poison event is dead-lettered; a dependency still failing
            # stops the pass with the position unmoved, for the next one.
            result = process(
                projection,
                plan,
                deliveries,
                writer,
                dead_letters,
                final_attempt=True,
                after=after,
            )
            if result.unapplied:
                break
            after = page[-1].sequence_number
            count += len(page)
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
    stale_after = float(config.get("PROJECTION_CATCH_UP_AFTER_SECONDS"))
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
