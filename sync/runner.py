"""Running a projection over one delivered batch: plan, collapse, write, dead-letter, record position.

At-least-once delivery is made exactly-once in effect by the writes' version
guards. A transient failure (throttling, timeouts, an outage, a missing
container) is raised so the host retries the whole batch (the function's retry
policy). On the final attempt it is NOT dead-lettered: the batch stops, its
partition's recorded position stays where it was, and the catch-up pass
(`sync.catch_up`) re-drives the gap from the event log once the dependency is
back — the Event Hubs trigger checkpoints past a failed batch, so the position
recorded here, which only ever advances contiguously, is what remembers the gap.
Only an event that no retry can fix (unparseable, or refused by Cosmos DB as a
document) goes to the dead-letter store, from which `sync.redrive` re-applies it.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import HttpResponseError

from shared.events import Event
from sync import unknown_events
from sync.ports import DeadLetters, Outcome, Writer
from sync.positions import PositionRecorder
from sync.telemetry import observed_batch
from sync.writes import Upsert, Write, collapse

log = logging.getLogger(__name__)

STATE_CONTAINER = "projection-state"
POISON_STATUS = frozenset({400, 413})  # Cosmos refuses the document itself

Plan = Callable[[Event], list[Write]]


@dataclass(frozen=True)
class Delivery:
    """One event as the trigger delivered it."""

    body: bytes
    partition: str
    sequence_number: int
    offset: int | str | None = None
    enqueued_time: datetime | None = None
    # Application properties (traceparent: the context the projection's span links to).
    properties: Mapping[str, Any] = field(default_factory=dict, compare=False)


@dataclass
class BatchResult:
    applied: int = 0
    writes: int = 0
    dead_lettered: list[str] = field(default_factory=list)
    unapplied: int = (
        0  # kept for the catch-up pass (out of retries, not the event's fault)
    )
    ignored: int = 0  # of a type no projection knows
    requests: int = 0
    seconds: float = 0.0


def is_poison(exc: BaseException) -> bool:
    """Errors no retry can fix (the event, or the write it leads to, is wrong). Anything
    else (throttling, timeouts, an identity hiccup, an outage) is retried while attempts last."""
    if isinstance(exc, HttpResponseError):  # Cosmos DB's, a transactional batch's too
        return exc.status_code in POISON_STATUS
    return isinstance(exc, ValueError | TypeError | KeyError)


def park(
    dead_letters: DeadLetters,
    projection: str,
    delivery: Delivery,
    error: str,
    event_id: str | None,
    *,
    final_attempt: bool,
    result: BatchResult,
) -> bool:
    """Dead-letter one event; False when even that failed on the final attempt.

    Then the event is logged whole and the batch's position is not advanced, so the
    catch-up pass meets the event again and dead-letters it once the store answers."""
    try:
        result.dead_lettered.append(
            dead_letters.put(projection, delivery, error, event_id)
        )
        return True
    except Exception:
        if not final_attempt:
            raise
        log.critical(
            "%s: could not dead-letter the event at partition %s sequence %s (%s); "
            "it stays unapplied for the catch-up pass; body: %r",
            projection,
            delivery.partition,
            delivery.sequence_number,
            error,
            delivery.body,
            exc_info=True,
        )
        return False


def position_write(
    projection: str,
    partition: str,
    deliveries: Sequence[Delivery],
    events: list[Event],
    after: int | None = None,
) -> Upsert:
    """Record that this partition is applied up to the batch's last sequence number.

    The write applies only if the recorded position already reaches the batch's first
    event (sequence numbers of a partition are consecutive; `after`, when given, is
    where the batch continues from, -1 for a partition's start): after an unapplied
    batch the position stays behind, and that gap is what the catch-up pass re-drives.
    Only a batch that starts the partition may create the position."""
    first = min(d.sequence_number for d in deliveries)
    last = max(deliveries, key=lambda d: d.sequence_number)
    positions = [e.position for e in events if e.position is not None]
    return Upsert(
        STATE_CONTAINER,
        f"{projection}:position:{partition}",
        projection,
        guard="sequenceNumber",
        version=last.sequence_number,
        requires_at_least=first - 1 if after is None else after,
        fields={
            "projection": projection,
            "kind": "position",
            "partition": partition,
            "offset": last.offset,
            "enqueuedTime": utc(last.enqueued_time).isoformat()
            if last.enqueued_time
            else None,
            "position": max(positions) if positions else None,
            "appliedAt": datetime.now(UTC).isoformat(),
        },
    )


def utc(moment: datetime) -> datetime:
    """Enqueued times can arrive without a zone (the trigger's metadata); they are UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


@dataclass
class _Batch:
    """One call of `process`: what it was given and what it has found so far."""

    projection: str
    deliveries: Sequence[Delivery]
    dead_letters: DeadLetters
    final_attempt: bool
    result: BatchResult = field(default_factory=BatchResult)
    events: list[Event] = field(default_factory=list)
    # Which deliveries planned each document part (to dead-letter them if it is refused).
    sources: dict[tuple, list[tuple[Delivery, Event]]] = field(
        default_factory=lambda: defaultdict(list)
    )

    def park(self, delivery: Delivery, error: str, event_id: str | None) -> None:
        """Dead-letter one event; if even that fails, it stays unapplied."""
        if not park(
            self.dead_letters,
            self.projection,
            delivery,
            error,
            event_id,
            final_attempt=self.final_attempt,
            result=self.result,
        ):
            self.result.unapplied += 1


@observed_batch
def process(
    projection: str,
    plan: Plan,
    deliveries: Sequence[Delivery],
    writer: Writer,
    dead_letters: DeadLetters,
    *,
    final_attempt: bool,
    record_positions: bool = True,
    after: int | None = None,
    positions: PositionRecorder | None = None,
) -> BatchResult:
    started = time.perf_counter()
    batch = _Batch(projection, deliveries, dead_letters, final_attempt)
    requests_before = writer.requests
    planned = _plan(batch, plan)
    for outcome in writer.execute_all(collapse(planned)):
        _settle(batch, outcome)
    if record_positions and not batch.result.unapplied:
        _record_positions(batch, writer, after, positions)
    result = batch.result
    result.applied = len(batch.events)
    result.requests = writer.requests - requests_before
    if positions is not None:
        result.requests += positions.take_requests()
    result.seconds = time.perf_counter() - started
    log.info(
        "%s: %d event(s) -> %d write(s), %d Cosmos request(s), %d dead-lettered, "
        "%d unapplied, %.0f ms",
        projection,
        result.applied,
        result.writes,
        result.requests,
        len(result.dead_lettered),
        result.unapplied,
        result.seconds * 1000,
    )
    return result


def _plan(batch: _Batch, plan: Plan) -> list[Write]:
    """Parse and plan every delivery; an event that cannot be is dead-lettered."""
    planned: list[Write] = []
    for delivery in batch.deliveries:
        try:
            event = Event.from_bytes(delivery.body)
            writes = plan(event)
        except Exception as exc:  # noqa: BLE001 - a poison event must not stop the batch
            batch.park(delivery, f"unparseable: {exc!r}", None)
            continue
        if not writes and unknown_events.note(event.event_type):
            batch.result.ignored += 1
        batch.events.append(event)
        for write in writes:
            batch.sources[write.key].append((delivery, event))
        planned.extend(writes)
    return planned


def _settle(batch: _Batch, outcome: Outcome) -> None:
    """Account for one group of writes: done, to retry, kept for catch-up, or refused."""
    group, error = outcome
    if error is None:
        batch.result.writes += len(group)
        return
    where = f"{group[0].container}/{getattr(group[0], 'id', '*')}"
    if not is_poison(error):
        if not batch.final_attempt:
            raise error  # the retry policy runs the batch again; applied writes are no-ops then
        # Out of retries but not the event's fault: keep the batch retryable (the
        # position stays behind; the catch-up pass re-drives it).
        log.error(
            "%s: write to %s still failing on the last attempt (%s: %s); "
            "%d event(s) kept for the catch-up pass",
            batch.projection,
            where,
            type(error).__name__,
            error,
            len(batch.deliveries),
        )
        batch.result.unapplied = len(batch.deliveries)
        return
    log.error(
        "%s: write to %s refused; dead-lettering its events",
        batch.projection,
        where,
        exc_info=error,
    )
    for write in group:
        for delivery, event in batch.sources[write.key]:
            batch.park(delivery, f"{type(error).__name__}: {error}", event.event_id)


def _record_positions(
    batch: _Batch,
    writer: Writer,
    after: int | None,
    positions: PositionRecorder | None,
) -> None:
    """Advance each delivered partition's recorded position, now or through `positions`
    (at most once a second per partition); a failure only delays it."""
    by_partition: dict[str, list[Delivery]] = defaultdict(list)
    for delivery in batch.deliveries:
        by_partition[delivery.partition].append(delivery)
    for partition, delivered in by_partition.items():
        write = position_write(
            batch.projection, partition, delivered, batch.events, after
        )
        if positions is not None:
            positions.note(write, writer)
            continue
        try:
            writer.execute(write)
        except Exception:
            log.warning(
                "%s: could not record the position of partition %s",
                batch.projection,
                partition,
                exc_info=True,
            )
