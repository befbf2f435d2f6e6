"""Order detail projection: one document per order in `orders` (partition key /id). Pure.

The order part of a document is guarded by the order's version; the customer
part (name, email, search text) by the customer's version, so a rename reaches
every order of the customer and an older rename never wins. The projection
keeps the newest customer snapshot it has seen, so an order whose placement
is processed after a rename still gets the new name.
"""

from __future__ import annotations

from typing import Any

from shared.events import CUSTOMER_EVENTS, ORDER_EVENTS, Event
from sync.writes import FanOut, Upsert, Write

NAME = "order-detail"
CONTAINER = "orders"
STATE_CONTAINER = "projection-state"


def metadata(event: Event) -> dict[str, Any]:
    """Where a document's state came from: the same ids the event and the request carried."""
    return {
        "eventId": event.event_id,
        "eventType": event.event_type,
        "position": event.position,
        "correlationId": event.correlation_id,
        "causationId": event.causation_id,
    }


def product_search(order: dict[str, Any]) -> str:
    return "\n".join(line["name"].lower() for line in order["items"])


def customer_part(customer: dict[str, Any]) -> dict[str, Any]:
    return {
        "customer": {
            "name": customer["name"],
            "email": customer["email"],
            # Whose order it is, for self-service reads (None: a staff-made customer).
            "ownerSubject": customer.get("ownerSubject"),
        },
        "customerSearch": customer["name"].lower(),
    }


def snapshot_id(customer_id: str) -> str:
    return f"{NAME}:customer:{customer_id}"


def plan(event: Event) -> list[Write]:
    if event.event_type in ORDER_EVENTS:
        order, customer = event.data["order"], event.data["customer"]
        return [
            Upsert(
                CONTAINER,
                order["id"],
                order["id"],
                guard="version",
                version=order["version"],
                fields={
                    "customerId": order["customerId"],
                    "status": order["status"],
                    "total": order["total"],
                    "placedAt": order["placedAt"],
                    "productSearch": product_search(order),
                    "order": order,
                    "metadata": metadata(event),
                },
                on_create={
                    **customer_part(customer),
                    "customerVersion": customer["version"],
                },
                snapshot_of=(
                    STATE_CONTAINER,
                    snapshot_id(order["customerId"]),
                    snapshot_id(order["customerId"]),
                ),
                snapshot_guard="customerVersion",
            )
        ]
    if event.event_type in CUSTOMER_EVENTS:
        customer = event.data["customer"]
        return [
            Upsert(
                STATE_CONTAINER,
                snapshot_id(customer["id"]),
                # Each snapshot is its own logical partition: one per customer spreads the
                # reads of every order creation instead of piling them on one partition.
                snapshot_id(customer["id"]),
                guard="version",
                version=customer["version"],
                fields={
                    "projection": snapshot_id(customer["id"]),
                    "kind": "customer-snapshot",
                    **customer_part(customer),
                },
            ),
            FanOut(
                CONTAINER,
                "customerId",
                customer["id"],
                guard="customerVersion",
                version=customer["version"],
                fields=customer_part(customer),
            ),
        ]
    return []
