"""Sales statistics projection: one document per order on its UTC placement day. Pure.

`sales` (partition /day) holds each order's total, status and lines, guarded by
the order's version; the stats query sums the documents of the days asked for,
so the figures are exact under redelivery and reordering.
"""

from __future__ import annotations

from shared.events import Event
from shared.money import to_cents
from sync.order_detail import ORDER_EVENTS, metadata
from sync.writes import Upsert, Write

NAME = "sales-stats"
SALES = "sales"


def plan(event: Event) -> list[Write]:
    if event.event_type not in ORDER_EVENTS:
        return []
    order = event.data["order"]
    day = order["placedAt"][:10]
    return [
        Upsert(
            SALES,
            order["id"],
            day,
            guard="version",
            version=order["version"],
            fields={
                "day": day,
                "status": order["status"],
                "totalCents": to_cents(order["total"]),
                "lines": [
                    {
                        "productId": line["productId"],
                        "name": line["name"],
                        "units": line["quantity"],
                        "revenueCents": to_cents(line["lineTotal"]),
                    }
                    for line in order["items"]
                ],
                "metadata": metadata(event),
            },
        )
    ]
