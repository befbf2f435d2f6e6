"""Figures read from the projections' totals documents: customers, products, sales. Pure.

The projections keep the totals (integer counters, money in cents); these
functions only shape them for the API, and sum a range's daily shards.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

from queries.models import ORDER_STATUSES
from shared.money import from_cents

TOP_PRODUCTS = 10
# A day shard's order counters (all orders placed that day; revenue of those not cancelled).
DAY_COUNTERS = ("orders", "revenueCents", "cancelled")


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
        day.isoformat(): dict.fromkeys(DAY_COUNTERS, 0)
        for day in days_between(first, last)
    }
    products: dict[str, dict[str, Any]] = {}
    for doc in totals:
        day = days.get(doc["day"])
        if day is None:
            continue
        counters = doc.get("counters", {})
        for name in DAY_COUNTERS:
            day[name] += counters.get(name, 0)
        _add_product_sales(products, doc)
    return {
        "days": [_day_figures(name, day) for name, day in days.items()],
        "totals": _day_figures(None, _sum_days(days.values())),
        "topProducts": _top_products(products),
    }


def _day_figures(name: str | None, day: dict[str, int]) -> dict[str, Any]:
    """A day's figures (`name` None: the range's totals, which carry no date)."""
    figures = {
        "orders": day["orders"],
        "revenue": from_cents(day["revenueCents"]),
        "cancelled": day["cancelled"],
    }
    return figures if name is None else {"date": name, **figures}


def _sum_days(days: Iterable[dict[str, int]]) -> dict[str, int]:
    summed = dict.fromkeys(DAY_COUNTERS, 0)
    for day in days:
        for name in DAY_COUNTERS:
            summed[name] += day[name]
    return summed


def _add_product_sales(
    products: dict[str, dict[str, Any]], doc: dict[str, Any]
) -> None:
    """Add a day shard's per-product counters (`units:<id>`, `revenueCents:<id>`)."""
    for name, value in doc.get("counters", {}).items():
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


def _top_products(products: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    ranked = sorted(
        (item for item in products.items() if item[1]["units"]),
        key=lambda item: (-item[1]["revenueCents"], -item[1]["units"], item[0]),
    )
    return [
        {
            "productId": product_id,
            "name": product["named"][1],
            "units": product["units"],
            "revenue": from_cents(product["revenueCents"]),
        }
        for product_id, product in ranked[:TOP_PRODUCTS]
    ]


def product_sales(totals: dict[str, Any] | None) -> dict[str, Any]:
    """unitsSold and revenue from the product's totals document (None: nothing sold yet)."""
    counters = (totals or {}).get("counters", {})
    return {
        "unitsSold": counters.get("units", 0),
        "revenue": from_cents(counters.get("revenueCents", 0)),
    }
