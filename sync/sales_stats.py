"""Sales statistics projection: per UTC day, a fixed number of shards. Pure.

`daily-sales` (partition /dayShard, "<day>#<shard>") holds one contribution per
order — its day, status, total and lines, guarded by the order's version — in the
shard its id hashes to, and each shard's totals document (orders, cancelled,
revenue, units and revenue per product, the products' latest names), changed
with the contribution in one transactional batch. The stats query reads only the
totals documents of the days asked for: O(days x shards), never O(orders), and no
logical partition takes a write for every order of the system.
"""

from __future__ import annotations

import hashlib
from typing import Any

from shared.events import ORDER_EVENTS, Event, OrderStatus
from shared.money import to_cents
from shared.read_model import SALES_SHARDS_PER_DAY
from sync.order_detail import metadata
from sync.writes import Counted, Write

NAME = "sales-stats"
DAILY_SALES = "daily-sales"


def shard_of(order_id: str) -> int:
    return int.from_bytes(hashlib.sha256(order_id.encode()).digest()[:4], "big") % (
        SALES_SHARDS_PER_DAY
    )


def day_shard(day: str, shard: int) -> str:
    return f"{day}#{shard}"


def sales_counts(order: dict[str, Any]) -> tuple[dict[str, int], dict[str, str]]:
    """What one order adds to its day's figures, and the product names it carries
    (labels of the units counters)."""
    if order["status"] == OrderStatus.CANCELLED:
        return {"orders": 1, "cancelled": 1}, {}
    counts = {"orders": 1, "revenueCents": to_cents(order["total"])}
    names = {}
    for line in order["items"]:
        units = f"units:{line['productId']}"
        revenue = f"revenueCents:{line['productId']}"
        counts[units] = counts.get(units, 0) + line["quantity"]
        counts[revenue] = counts.get(revenue, 0) + to_cents(line["lineTotal"])
        names[units] = line["name"]
    return counts, names


def plan(event: Event) -> list[Write]:
    if event.event_type not in ORDER_EVENTS:
        return []
    order = event.data["order"]
    day = order["placedAt"][:10]
    counts, names = sales_counts(order)
    return [
        Counted(
            DAILY_SALES,
            day_shard(day, shard_of(order["id"])),
            order["id"],
            guard="version",
            version=order["version"],
            fields={
                "dayShard": day_shard(day, shard_of(order["id"])),
                "day": day,
                "status": order["status"],
                "totalCents": to_cents(order["total"]),
                "metadata": metadata(event),
            },
            counts=counts,
            labels=names,
            aggregate_fields={"day": day, "shards": SALES_SHARDS_PER_DAY},
        )
    ]
