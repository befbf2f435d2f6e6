"""Order detail projection: one document per order, point-read by id. Pure code, no I/O.

Order events carry the order's whole state, so the document for an order is a
function of its newest event alone: applying events in any order, any number of
times, converges on the state of the highest version.
"""

from __future__ import annotations

from typing import Any

from shared.events import Event

CONTAINER = "orders"
ORDER_EVENTS = frozenset(
    {
        "OrderPlaced",
        "OrderItemAdded",
        "OrderItemRemoved",
        "OrderShippingAddressChanged",
        "OrderShipped",
        "OrderDelivered",
        "OrderCancelled",
    }
)


def metadata(event: Event) -> dict[str, Any]:
    return {
        "eventId": event.event_id,
        "position": event.position,
        "correlationId": event.correlation_id,
        "causationId": event.causation_id,
    }


def order_document(event: Event) -> dict[str, Any] | None:
    """The document an order event leads to (None for events this projection ignores)."""
    if event.event_type not in ORDER_EVENTS:
        return None
    order = event.data["order"]
    customer = event.data["customer"]
    return {
        "id": order["id"],
        "customerId": order["customerId"],
        "version": order["version"],
        "order": order,
        "customer": {"name": customer["name"], "email": customer["email"]},
        "customerVersion": customer["version"],
        "metadata": metadata(event),
    }


def newest_per_document(events: list[Event]) -> dict[str, Event]:
    """Collapse a batch: per order, only the highest version matters."""
    newest: dict[str, Event] = {}
    for event in events:
        if event.event_type not in ORDER_EVENTS:
            continue
        current = newest.get(event.aggregate_id)
        if current is None or event.aggregate_version > current.aggregate_version:
            newest[event.aggregate_id] = event
    return newest
