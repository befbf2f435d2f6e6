"""Figures read from the projections' totals documents: customers, products, sales. Pure.

The projections keep the totals (integer counters, money in cents); these
functions only shape them for the API, and sum a range's daily shards.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from queries.models import ORDER_STATUSES
from shared.money import from_cents, to_cents

TOP_PRODUCTS = 10


def cents(amount: float | str | Decimal) -> int:
    """Integer cents of a 2-decimal JSON number (a float's repr is its shortest exact text)."""
    return to_cents(Decimal(str(amount)))


def customer_totals(totals: dict[str, Any] | None) -> dict[str, Any]:
    """A customer's totals from the totals document the customer-view projection keeps
    beside their order summaries (None: no order projected yet)."""
    counters = (totals or {}).get("counters", {})
    return {
        "orderCount": counters.get("orders", 0),
        "openOrderCount": counters.get("open", 0),
        "totalSpent": from_cents(counters.get("spentCents", 0)),
        "ordersByStatus": {
            status: counters.get(f"status:{status}", 0) for status in ORDER_STATUSES
        },
        "lastOrderAt": (totals or {}).get("maxima", {}).get("lastOrderAt"),
    }


def days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def sales_stats(
    totals: Iterable[dict[str, Any]], first: date, last: date
) -> dict[str, Any]:
    """Daily figures, totals and top products from the days' shard totals documents.

    A day counts every order placed on it; revenue and top products count the
    orders not cancelled. Top products rank by revenue, then units, then id; a
    product shows the name its lines carry on the latest day it sold.
    """
    days = {
        day.isoformat(): {"orders": 0, "revenueCents": 0, "cancelled": 0}
        for day in days_between(first, last)
    }
    products: dict[str, dict[str, Any]] = {}
    for doc in totals:
        day = days.get(doc["day"])
        if day is None:
            continue
        counters = doc.get("counters", {})
        day["orders"] += counters.get("orders", 0)
        day["cancelled"] += counters.get("cancelled", 0)
        day["revenueCents"] += counters.get("revenueCents", 0)
        for name, value in counters.items():
            kind, _, product_id = name.partition(":")
            if kind not in ("units", "revenueCents") or not product_id:
                continue
            product = products.setdefault(
                product_id, {"units": 0, "revenueCents": 0, "named": ("", "")}
            )
            product[kind] += value
            # The name its lines carry on the latest day (ties: the greatest name).
            names = doc.get("labels", {}).get(name, {})
            if names:
                product["named"] = max(product["named"], (doc["day"], max(names)))
    ranked = sorted(
        (item for item in products.items() if item[1]["units"]),
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
                "name": product["named"][1],
                "units": product["units"],
                "revenue": from_cents(product["revenueCents"]),
            }
            for product_id, product in ranked[:TOP_PRODUCTS]
        ],
    }


def product_sales(totals: dict[str, Any] | None) -> dict[str, Any]:
    """unitsSold and revenue from the product's totals document (None: nothing sold yet)."""
    counters = (totals or {}).get("counters", {})
    return {
        "unitsSold": counters.get("units", 0),
        "revenue": from_cents(counters.get("revenueCents", 0)),
    }
