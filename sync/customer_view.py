"""Customer view projection: the customer document and the customer's order summaries. Pure.

`customers` (partition /id) holds name, email and credit limit; `customer-orders`
(partition /customerId) holds one summary per order, so the customer's order
list and totals are single-partition reads. Totals are computed from the
summaries at query time: each summary is a per-order contribution guarded by
the order's version, so they are exact under redelivery by construction.
"""

from __future__ import annotations

from shared.events import Event
from sync.order_detail import CUSTOMER_EVENTS, ORDER_EVENTS, metadata, product_search
from sync.writes import Upsert, Write

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
                    "metadata": metadata(event),
                },
            )
        ]
    if event.event_type in ORDER_EVENTS:
        o = event.data["order"]
        return [
            Upsert(
                CUSTOMER_ORDERS,
                o["id"],
                o["customerId"],
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
            )
        ]
    return []
