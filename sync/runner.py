"""Running a projection over one delivered batch: plan, collapse, write, dead-letter, record position.

At-least-once delivery is made exactly-once in effect by the writes' version
guards. A transient Cosmos DB failure is raised so the host retries the whole
batch (the function's retry policy); on the final attempt, or for an error no
retry can fix (an unparseable event, a bug), the events behind the failed write
are dead-lettered with the error and the rest of the batch goes on, because the
Event Hubs trigger checkpoints past a failed batch anyway.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from azure.cosmos.exceptions import CosmosHttpResponseError

from shared.events import Event
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


@dataclass
class BatchResult:
    applied: int = 0
    writes: int = 0
    dead_lettered: list[str] = field(default_factory=list)
    requests: int = 0
    seconds: float = 0.0


def is_poison(exc: BaseException) -> bool:
    """Errors no retry can fix (the event, or the write it leads to, is wrong). Anything
    else (throttling, timeouts, an identity hiccup, an outage) is retried while attempts last."""
    if isinstance(exc, CosmosHttpResponseError):
        return exc.status_code in POISON_STATUS
    return isinstance(exc, ValueError | TypeError | KeyError)


def park(
    dead_letters,
    projection: str,
    delivery: Delivery,
    error: str,
    event_id: str | None,
    *,
    final_attempt: bool,
    result: BatchResult,
) -> None:
    """Dead-letter one event. If even that fails, retry the batch; on the last attempt the
    event is logged whole, so nothing vanishes silently."""
    try:
        result.dead_lettered.append(
            dead_letters.put(projection, delivery, error, event_id)
        )
    except Exception:
        if not final_attempt:
            raise
        log.critical(
            "%s: could not dead-letter the event at partition %s sequence %s (%s); body: %r",
            projection,
            delivery.partition,
            delivery.sequence_number,
            error,
            delivery.body,
        )


def position_write(
    projection: str, partition: str, deliveries: Sequence[Delivery], events: list[Event]
) -> Upsert:
    last = max(deliveries, key=lambda d: d.sequence_number)
    positions = [e.position for e in events if e.position is not None]
    return Upsert(
        STATE_CONTAINER,
        f"{projection}:position:{partition}",
        projection,
        guard="sequenceNumber",
        version=last.sequence_number,
        fields={
            "projection": projection,
            "kind": "position",
            "partition": partition,
            "offset": last.offset,
            "enqueuedTime": last.enqueued_time.isoformat()
            if last.enqueued_time
            else None,
            "position": max(positions) if positions else None,
            "appliedAt": datetime.now(UTC).isoformat(),
        },
    )


def process(
    projection: str,
    plan: Plan,
    deliveries: Sequence[Delivery],
    writer,
    dead_letters,
    *,
    final_attempt: bool,
    record_positions: bool = True,
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
            park(
                dead_letters,
                projection,
                delivery,
                f"unparseable: {exc!r}",
                None,
                final_attempt=final_attempt,
                result=result,
            )
            continue
        events.append(event)
        for write in writes:
            sources[write.key].append((delivery, event))
        planned.extend(writes)
    collapsed = collapse(planned)
    for write in collapsed:
        try:
            writer.execute(write)
            result.writes += 1
        except Exception as exc:
            if not is_poison(exc) and not final_attempt:
                raise  # let the retry policy run the batch again; applied writes are no-ops then
            log.exception(
                "%s: write to %s/%s failed; dead-lettering its events",
                projection,
                write.container,
                getattr(write, "id", "*"),
            )
            for delivery, event in sources[write.key]:
                park(
                    dead_letters,
                    projection,
                    delivery,
                    f"{type(exc).__name__}: {exc}",
                    event.event_id,
                    final_attempt=final_attempt,
                    result=result,
                )
    by_partition: dict[str, list[Delivery]] = defaultdict(list)
    for delivery in deliveries:
        by_partition[delivery.partition].append(delivery)
    for partition, delivered in by_partition.items() if record_positions else ():
        try:
            writer.execute(position_write(projection, partition, delivered, events))
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
        "%s: %d event(s) -> %d write(s), %d Cosmos request(s), %d dead-lettered, %.0f ms",
        projection,
        result.applied,
        result.writes,
        result.requests,
        len(result.dead_lettered),
        result.seconds * 1000,
    )
    return result
