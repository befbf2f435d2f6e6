"""The projections' Event Hub triggers (one function and consumer group per projection)
and the catch-up timer that re-drives what an outage left unapplied."""

from __future__ import annotations

import _strptime  # type: ignore[import-not-found]  # no stub: a private stdlib module
import typing

import azure.functions as func

from shared.cosmos import sync_container
from sync import catch_up
from sync.cosmos_writer import CosmosWriter
from sync.dead_letters import dead_letters
from sync.positions import PositionRecorder
from sync.projections import PROJECTIONS, consumer_group
from sync.runner import Delivery, process, utc

bp = func.Blueprint()
# The live triggers' positions, written at most once a second per partition.
positions = PositionRecorder()

MAX_RETRIES = 5
# The worker's converter (azure-functions) parses each delivered event's enqueued time by
# trying up to 13 strptime formats in turn (the host sends it without a zone, which the
# 13th matches), and Python keeps only 5 compiled: every event would compile all 13 again,
# a large share of a projection's CPU under load. With room for them they stay compiled.
STRPTIME_FORMATS = 32
if getattr(_strptime, "_CACHE_MAX_SIZE", STRPTIME_FORMATS) < STRPTIME_FORMATS:
    _strptime._CACHE_MAX_SIZE = STRPTIME_FORMATS


def deliveries(events: typing.List[func.EventHubEvent]) -> list[Delivery]:  # noqa: UP006
    if not events:
        return []
    metadata = events[0].metadata or {}
    partition = (metadata.get("PartitionContext") or {}).get("PartitionId")
    if partition is None:
        # Positions are per partition: guessing one would mix sequence numbers.
        raise ValueError("the trigger metadata names no partition (PartitionContext)")
    # Each event's application properties (traceparent among them), in batch order.
    properties: list = metadata.get("PropertiesArray") or []
    return [
        Delivery(
            e.get_body(),
            str(partition),
            _sequence_number(e),
            e.offset,
            utc(e.enqueued_time) if e.enqueued_time else None,
            properties[i] if i < len(properties) else {},
        )
        for i, e in enumerate(events)
    ]


def _sequence_number(event: func.EventHubEvent) -> int:
    if event.sequence_number is None:  # the trigger numbers every event it delivers
        raise ValueError("the trigger delivered an event without its sequence number")
    return event.sequence_number


def is_final_attempt(context: func.Context) -> bool:
    retry = getattr(context, "retry_context", None)
    return retry is None or retry.retry_count >= retry.max_retry_count


def register(projection: str) -> None:
    plan = PROJECTIONS[projection]
    name = projection.replace("-", "_") + "_projection"

    # The worker checks this annotation as typing.List (a builtin list[...] fails its check).
    def handler(events: typing.List[func.EventHubEvent], context: func.Context) -> None:  # noqa: UP006
        process(
            projection,
            plan,
            deliveries(events),
            CosmosWriter(sync_container),
            dead_letters(),
            final_attempt=is_final_attempt(context),
            positions=positions,
        )

    handler.__name__ = handler.__qualname__ = name
    bp.function_name(name)(
        bp.retry(
            strategy="exponential_backoff",
            max_retry_count=str(MAX_RETRIES),
            minimum_interval="00:00:01",
            maximum_interval="00:00:30",
        )(
            bp.event_hub_message_trigger(
                arg_name="events",
                event_hub_name="%EVENTHUB_NAME%",
                connection="EventHubConnection",
                consumer_group=consumer_group(projection),
                cardinality="many",
            )(handler)
        )
    )


for _projection in PROJECTIONS:
    register(_projection)


@bp.function_name("projection_catch_up")
@bp.timer_trigger(
    arg_name="timer", schedule="*/15 * * * * *", run_on_startup=False, use_monitor=False
)
def projection_catch_up(timer: func.TimerRequest) -> None:
    """Re-drive gaps an outage left in any projection (timer triggers run as a singleton)."""
    catch_up.run()
