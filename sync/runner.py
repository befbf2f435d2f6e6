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
from typing import Any, Protocol

from azure.core.exceptions import HttpResponseError

from shared.events import Event
from sync import unknown_events
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


class Writer(Protocol):
    requests: int

    def execute(self, write: Write) -> None: ...

    def execute_all(
        self, writes: Sequence[Write]
    ) -> list[tuple[list[Write], BaseException | None]]:
        """Carry out collapsed writes; per group of writes, the error it met or None."""
        ...


class DeadLetters(Protocol):
    def put(
        self, projection: str, delivery: Delivery, error: str, event_id: str | None
    ) -> str: ...


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
) -> BatchResult:
    started = time.perf_counter()
    result = BatchResult()
    requests_before = writer.requests
    events: list[Event] = []
    sources: dict[tuple, list[tuple[Delivery, Event]]] = defaultdict(list)
    planned: list[Write] = []
    for delivery in deliveries:
        try:
            event = Event.from_bytes(delivery.body)
            writes = plan(event)
        except Exception as exc:  # noqa: BLE001 - a poison event must not stop the batch
            if not park(
                dead_letters,
                projection,
                delivery,
                f"unparseable: {exc!r}",
                None,
                final_attempt=final_attempt,
                result=result,
            ):
                result.unapplied += 1
            continue
        if not writes and unknown_events.note(event.event_type):
            result.ignored += 1
        events.append(event)
        for write in writes:
            sources[write.key].append((delivery, event))
        planned.extend(writes)
    for group, exc in writer.execute_all(collapse(planned)):
        if exc is None:
            result.writes += len(group)
            continue
        where = f"{group[0].container}/{getattr(group[0], 'id', '*')}"
        if not is_poison(exc):
            if not final_attempt:
                raise exc  # the retry policy runs the batch again; applied writes are no-ops then
            # Out of retries but not the event's fault: keep the batch retryable (the
            # position stays behind; the catch-up pass re-drives it).
            log.error(
                "%s: write to %s still failing on the last attempt (%s: %s); "
                "%d event(s) kept for the catch-up pass",
                projection,
                where,
                type(exc).__name__,
                exc,
                len(deliveries),
            )
            result.unapplied = len(deliveries)
            continue
        log.error(
            "%s: write to %s refused; dead-lettering its events",
            projection,
            where,
            exc_info=exc,
        )
        for write in group:
            for delivery, event in sources[write.key]:
                if not park(
                    dead_letters,
                    projection,
                    delivery,
                    f"{type(exc).__name__}: {exc}",
                    event.event_id,
                    final_attempt=final_attempt,
                    result=result,
                ):
                    result.unapplied += 1
    by_partition: dict[str, list[Delivery]] = defaultdict(list)
    for delivery in deliveries:
        by_partition[delivery.partition].append(delivery)
    if record_positions and not result.unapplied:
        for partition, delivered in by_partition.items():
            try:
                writer.execute(
                    position_write(projection, partition, delivered, events, after)
                )
            except Exception:
                log.warning(
                    "%s: could not record the position of partition %s",
                    projection,
                    partition,
                    exc_info=True,
                )
    result.applied = len(events)
    result.requests = writer.requests - requests_before
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
