"""Customer view projection: the customer document and the customer's order summaries. Pure.

`customers` (partition /id) holds name, email and credit limit; `customer-orders`
(partition /customerId) holds one summary per order and the customer's totals
document beside them. Each summary is a contribution to the totals (order count,
count per status, open orders, amount spent, last order time), changed together
with them in one transactional batch, so the totals are exact under redelivery
and a customer read is two point reads whatever the history.
"""

from __future__ import annotations

from typing import Any

from shared.events import (
    CUSTOMER_EVENTS,
    OPEN_STATUSES,
    ORDER_EVENTS,
    Event,
    OrderStatus,
)
from shared.money import to_cents
from sync.order_detail import metadata, product_search
from sync.writes import Counted, Upsert, Write

NAME = "customer-view"
CUSTOMERS = "customers"
CUSTOMER_ORDERS = "customer-orders"


def plan(event: Event) -> list[Write]:
    if event.event_type in CUSTOMER_EVENTS:
        c = event.data["customer"]
        return [
            Upsert(
                CUSTOMERS,
                c["id"],
                c["id"],
                guard="version",
                version=c["version"],
                fields={
                    "name": c["name"],
                    "email": c["email"],
                    "creditLimit": c["creditLimit"],
                    "nameSearch": c["name"].lower(),
                    "ownerSubject": c.get("ownerSubject"),
                    "metadata": metadata(event),
                },
            )
        ]
    if event.event_type in ORDER_EVENTS:
        o = event.data["order"]
        return [
            Counted(
                CUSTOMER_ORDERS,
                o["customerId"],
                o["id"],
                guard="version",
                version=o["version"],
                fields={
                    "customerId": o["customerId"],
                    "status": o["status"],
                    "itemCount": o["itemCount"],
                    "total": o["total"],
                    "placedAt": o["placedAt"],
                    "productSearch": product_search(o),
                    "metadata": metadata(event),
                },
                counts=order_counts(o["status"], o["total"]),
                maxima={"lastOrderAt": o["placedAt"]},
            )
        ]
    return []


def order_counts(status: str, total: Any) -> dict[str, int]:
    """What one order adds to its customer's totals."""
    return {
        "orders": 1,
        f"status:{status}": 1,
        "open": int(status in OPEN_STATUSES),
        "spentCents": 0 if status == OrderStatus.CANCELLED else to_cents(total),
    }
