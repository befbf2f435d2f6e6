"""Figures computed from read-model documents: customer totals and sales statistics. Pure.

The local Cosmos stand-in has no GROUP BY, and Cosmos sums money as floats, so
the few fields needed are fetched and summed here, in integer cents.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from queries.models import ORDER_STATUSES
from shared.money import from_cents, to_cents

OPEN_STATUSES = frozenset({"placed", "shipped"})
TOP_PRODUCTS = 10


def cents(amount: float | str | Decimal) -> int:
    """Integer cents of a 2-decimal JSON number (a float's repr is its shortest exact text)."""
    return to_cents(Decimal(str(amount)))


def customer_totals(summaries: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Totals of a customer from their order summaries ({status, total, placedAt})."""
    by_status = dict.fromkeys(ORDER_STATUSES, 0)
    count = open_count = spent = 0
    last: str | None = None
    for summary in summaries:
        status = summary["status"]
        count += 1
        if status in by_status:
            by_status[status] += 1
        if status in OPEN_STATUSES:
            open_count += 1
        if status != "cancelled":
            spent += cents(summary["total"])
        if last is None or summary["placedAt"] > last:
            last = summary["placedAt"]
    return {
        "orderCount": count,
        "openOrderCount": open_count,
        "totalSpent": from_cents(spent),
        "ordersByStatus": by_status,
        "lastOrderAt": last,
    }


def days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def sales_stats(
    documents: Iterable[dict[str, Any]], first: date, last: date
) -> dict[str, Any]:
    """Daily figures, totals and top products from `sales` documents (one per order).

    A day counts every order placed on it; revenue and top products count the
    orders not cancelled. Top products rank by revenue, then units, then id.
    """
    days = {
        day.isoformat(): {"orders": 0, "revenueCents": 0, "cancelled": 0}
        for day in days_between(first, last)
    }
    products: dict[str, dict[str, Any]] = {}
    for doc in documents:
        day = days.get(doc["day"])
        if day is None:
            continue
        day["orders"] += 1
        if doc["status"] == "cancelled":
            day["cancelled"] += 1
            continue
        day["revenueCents"] += int(doc["totalCents"])
        for line in doc.get("lines", []):
            product = products.setdefault(
                line["productId"],
                {
                    "units": 0,
                    "revenueCents": 0,
                    "name": line["name"],
                    "day": doc["day"],
                },
            )
            product["units"] += int(line["units"])
            product["revenueCents"] += int(line["revenueCents"])
            # Lines keep the name they were bought under: show the most recent one.
            if doc["day"] > product["day"]:
                product["name"], product["day"] = line["name"], doc["day"]
    ranked = sorted(
        products.items(),
        key=lambda item: (-item[1]["revenueCents"], -item[1]["units"], item[0]),
    )
    return {
        "days": [
            {
                "date": name,
                "orders": day["orders"],
                "revenue": from_cents(day["revenueCents"]),
                "cancelled": day["cancelled"],
            }
            for name, day in days.items()
        ],
        "totals": {
            "orders": sum(day["orders"] for day in days.values()),
            "revenue": from_cents(sum(day["revenueCents"] for day in days.values())),
            "cancelled": sum(day["cancelled"] for day in days.values()),
        },
        "topProducts": [
            {
                "productId": product_id,
                "name": product["name"],
                "units": product["units"],
                "revenue": from_cents(product["revenueCents"]),
            }
            for product_id, product in ranked[:TOP_PRODUCTS]
        ],
    }


def product_sales(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """unitsSold and revenue from the aggregate rows of a product's counted contributions."""
    units = revenue = 0
    for row in rows:
        # SUM over no documents is undefined in Cosmos, so a field may be missing.
        units += int(row.get("units") or 0)
        revenue += int(row.get("revenueCents") or 0)
    return {"unitsSold": units, "revenue": from_cents(revenue)}
