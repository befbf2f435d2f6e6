"""The projections' telemetry: one CONSUMER span per batch, linked to every event's producer
context, and the sync metrics (events by outcome, batch duration, freshness, dead letters,
lag). Everything here is a no-op while `shared.telemetry` is off.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from shared import config, telemetry

R = TypeVar("R")


def observed_batch(process: Callable[..., R]) -> Callable[..., R]:
    """Decorates `sync.runner.process(projection, plan, deliveries, ...)`.

    The span is `process <event hub>` (messaging semantic conventions) with a link to
    the context each delivered event was produced in (its `traceparent` property): a
    batch has many parents. When every event of the batch comes from one producer
    context, that context is also the span's parent, so a single request's projections
    sit in its trace."""

    @functools.wraps(process)
    def traced(
        projection: str,
        plan: Any,
        deliveries: Sequence[Any],
        *args: Any,
        **kwargs: Any,
    ) -> R:
        if not telemetry.enabled():
            return process(projection, plan, deliveries, *args, **kwargs)
        from opentelemetry.trace import SpanKind

        links, parents, correlation_ids = _producers(deliveries)
        parent_context = (
            telemetry.extract(next(iter(parents))) if len(parents) == 1 else None
        )
        hub = config.get("EVENTHUB_NAME")
        started = time.perf_counter()
        with (
            telemetry.correlated(telemetry.joined_ids(correlation_ids)),
            telemetry.tracer().start_as_current_span(
                f"process {hub}",
                context=parent_context,
                kind=SpanKind.CONSUMER,
                links=links,
                attributes=_span_attributes(projection, hub, deliveries),
            ) as span,
        ):
            try:
                result = process(projection, plan, deliveries, *args, **kwargs)
            finally:
                telemetry.instrument("cqrs.sync.batch.duration").record(
                    (time.perf_counter() - started) * 1000, {"projection": projection}
                )
            counts = outcomes(result, len(deliveries))
            for outcome, count in counts.items():
                span.set_attribute(f"cqrs.events.{outcome}", count)
            span.set_attribute("cqrs.writes", cast(Any, result).writes)
        record_batch(projection, deliveries, result, counts)
        return result

    return traced


def _producers(
    deliveries: Sequence[Any],
) -> tuple[list[Any], set[Any], list[Any]]:
    """(links to each event's producer context, the distinct traceparents, the events'
    correlation ids)."""
    from opentelemetry.trace import Link

    links: list[Link] = []
    parents: set[Any] = set()
    correlation_ids: list[Any] = []
    for delivery in deliveries:
        properties: Mapping[str, Any] = getattr(delivery, "properties", {}) or {}
        parent = properties.get("traceparent")
        correlation_ids.append(properties.get("correlationId"))
        context = telemetry.span_context_of(parent, properties.get("tracestate"))
        if context is None:
            continue
        parents.add(parent)
        links.append(
            Link(
                context,
                {
                    "messaging.destination.partition.id": delivery.partition,
                    "cqrs.sequence_number": delivery.sequence_number,
                    telemetry.CORRELATION_ID: properties.get("correlationId") or "",
                    "cqrs.event_type": properties.get("eventType") or "",
                },
            )
        )
    return links, parents, correlation_ids


def _span_attributes(
    projection: str, hub: str | None, deliveries: Sequence[Any]
) -> dict[str, Any]:
    """The batch span's attributes (messaging semantic conventions)."""
    partitions = sorted({d.partition for d in deliveries})
    attributes: dict[str, Any] = {
        "messaging.system": "eventhubs",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": hub,
        "messaging.consumer.group.name": _consumer_group(projection),
        "messaging.batch.message_count": len(deliveries),
        "cqrs.projection": projection,
    }
    if len(partitions) == 1:
        attributes["messaging.destination.partition.id"] = partitions[0]
    return attributes


def outcomes(result: Any, delivered: int) -> dict[str, int]:
    """Events of a finished batch by outcome. Unapplied ones (kept for the catch-up pass)
    are none of these: they are counted when the catch-up pass applies them."""
    dead = len(result.dead_lettered)
    skipped = result.ignored
    applied = max(0, delivered - dead - skipped - result.unapplied)
    return {"applied": applied, "skipped": skipped, "dead_lettered": dead}


def record_batch(
    projection: str, deliveries: Sequence[Any], result: Any, counts: Mapping[str, int]
) -> None:
    events = telemetry.instrument("cqrs.sync.events")
    for outcome, count in counts.items():
        if count:
            events.add(count, {"projection": projection, "outcome": outcome})
    if counts["dead_lettered"]:
        telemetry.instrument("cqrs.dead_letters").add(
            counts["dead_lettered"], {"projection": projection}
        )
    newest = max((d.enqueued_time for d in deliveries if d.enqueued_time), default=None)
    if counts["applied"] and newest is not None:
        from sync.runner import utc

        telemetry.instrument("cqrs.readmodel.freshness").set(
            round(max(0.0, (datetime.now(UTC) - utc(newest)).total_seconds()), 3),
            {"projection": projection},
        )


def record_lag(
    positions: list[dict[str, Any]],
    tails: Mapping[str, tuple[int | None, datetime | None]],
    now: datetime,
) -> None:
    """`cqrs.sync.lag` per projection and partition, computed as GET /api/projections does."""
    if not telemetry.enabled():
        return
    from sync.status import lag_seconds

    gauge = telemetry.instrument("cqrs.sync.lag")
    for (projection, partition), seconds in lag_seconds(
        positions, dict(tails), now
    ).items():
        gauge.set(round(seconds, 3), {"projection": projection, "partition": partition})


def _consumer_group(projection: str) -> str:
    try:
        from sync.projections import consumer_group

        return consumer_group(projection)
    except KeyError:  # a projection not in topology.json (tests)
        return projection
