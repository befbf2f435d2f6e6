"""Product view projection: the product document and its per-order sales contributions. Pure.

`products` (partition /id) follows product events (each carries the product's
whole state, stock included). `product-sales` (partition /productId) holds one
contribution per (product, order) — units and revenue in cents, counted unless
the order is cancelled — guarded by the order's version, and the product's totals
document (unitsSold, revenue) changed with them in one transactional batch: exact
under redelivery and reordering, and a product read is two point reads.
"""

from __future__ import annotations

from shared.events import ORDER_EVENTS, PRODUCT_EVENTS, Event, OrderStatus
from shared.money import to_cents
from sync.order_detail import metadata
from sync.writes import Counted, Upsert, Write

NAME = "product-view"
PRODUCTS = "products"
PRODUCT_SALES = "product-sales"


def _contribution(
    order: dict, product_id: str, units: int, revenue_cents: int
) -> Counted:
    counted = order["status"] != OrderStatus.CANCELLED and units > 0
    return Counted(
        PRODUCT_SALES,
        product_id,
        order["id"],
        guard="orderVersion",
        version=order["version"],
        fields={
            "productId": product_id,
            "units": units,
            "revenueCents": revenue_cents,
            "counted": counted,
            "placedAt": order["placedAt"],
        },
        counts={"units": units, "revenueCents": revenue_cents} if counted else {},
    )


def plan(event: Event) -> list[Write]:
    if event.event_type in PRODUCT_EVENTS:
        p = event.data["product"]
        return [
            Upsert(
                PRODUCTS,
                p["id"],
                p["id"],
                guard="version",
                version=p["version"],
                fields={
                    "sku": p["sku"],
                    "name": p["name"],
                    "price": p["price"],
                    "stock": p["stock"],
                    "metadata": metadata(event),
                },
            )
        ]
    if event.event_type in ORDER_EVENTS:
        order = event.data["order"]
        writes: list[Write] = [
            _contribution(
                order, line["productId"], line["quantity"], to_cents(line["lineTotal"])
            )
            for line in order["items"]
        ]
        if removed := event.data.get("removedProductId"):
            writes.append(_contribution(order, removed, 0, 0))
        return writes
    return []
