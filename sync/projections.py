"""The projections' I/O: each takes decoded events and writes its Cosmos DB documents."""

from __future__ import annotations

from shared.cosmos import container
from shared.events import Event
from sync import order_detail
from sync.cosmos_writer import write_if_newer


def project_order_detail(events: list[Event]) -> None:
    orders = container(order_detail.CONTAINER)
    for order_id, event in order_detail.newest_per_document(events).items():
        document = order_detail.order_document(event)
        write_if_newer(
            orders, document, order_id, guarded=("customerId", "order", "metadata")
        )
