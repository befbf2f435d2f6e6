"""The projections' Event Hub triggers: one consumer group per projection, batches, retry."""

from __future__ import annotations

import azure.functions as func

from sync import projections, runner

bp = func.Blueprint()

EVENT_HUB = "%EVENTHUB_NAME%"
CONNECTION = "EventHubConnection"


@bp.function_name("order_detail_projection")
@bp.retry(
    strategy="exponential_backoff",
    max_retry_count="5",
    minimum_interval="00:00:01",
    maximum_interval="00:00:30",
)
@bp.event_hub_message_trigger(
    arg_name="events",
    event_hub_name=EVENT_HUB,
    connection=CONNECTION,
    consumer_group="order-detail",
    cardinality="many",
)
def order_detail_projection(events: list[func.EventHubEvent]) -> None:
    runner.run(
        "order-detail", projections.project_order_detail, [e.get_body() for e in events]
    )
