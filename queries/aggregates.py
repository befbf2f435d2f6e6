"""Figures read from the projections' totals documents: customers, products, sales. Pure.

The projections keep the totals (integer counters, money in cents); these
functions only shape them for the API, and sum a range's daily shards.
"""

from __future__ import annotations

from collections import Counter
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
    products = _ProductSales()
    for doc in totals:
        day = days.get(doc["day"])
        if day is None:
            continue
        counters = doc.get("counters", {})
        for name in DAY_COUNTERS:
            day[name] += counters.get(name, 0)
        products.add(doc)
    return {
        "days": [_day_figures(name, day) for name, day in days.items()],
        "totals": _day_figures(None, _sum_days(days.values())),
        "topProducts": products.top(),
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


UNITS = "units"  # counters `units:<product id>`
REVENUE = "revenueCents"  # and `revenueCents:<product id>`


class _ProductSales:
    """Units and revenue per product summed over day shards (`units:<id>`,
    `revenueCents:<id>` counters), and the name each product's lines carry on the
    latest day it sold (ties: the greatest name). A 30-day range sums a few hundred
    shards, so this loop is the query's own per-document cost, the one that grows with
    the shards' size: kept to one split and one dict update per counter, and a label's
    names are compared only on a day not older than the one known."""

    def __init__(self) -> None:
        self.units: Counter[str] = Counter()
        self.revenue: Counter[str] = Counter()
        self.named: dict[str, tuple[str, str]] = {}

    def add(self, doc: dict[str, Any]) -> None:
        units, revenue = self.units, self.revenue
        for name, value in doc.get("counters", {}).items():
            kind, colon, product_id = name.partition(":")
            if colon and kind == UNITS:
                units[product_id] += value
            elif colon and kind == REVENUE:
                revenue[product_id] += value
        day, named = doc["day"], self.named
        for name, names in doc.get("labels", {}).items():
            kind, colon, product_id = name.partition(":")
            if not (names and colon and kind == UNITS):
                continue
            known = named.get(product_id)
            if known is None or day >= known[0]:
                latest = (day, max(names))
                if known is None or latest > known:
                    named[product_id] = latest

    def top(self) -> list[dict[str, Any]]:
        ranked = sorted(
            (p for p, units in self.units.items() if units and p),
            key=lambda p: (-self.revenue[p], -self.units[p], p),
        )
        return [
            {
                "productId": product_id,
                "name": self.named.get(product_id, ("", ""))[1],
                "units": self.units[product_id],
                "revenue": from_cents(self.revenue[product_id]),
            }
            for product_id in ranked[:TOP_PRODUCTS]
        ]


def product_sales(totals: dict[str, Any] | None) -> dict[str, Any]:
    """unitsSold and revenue from the product's totals document (None: nothing sold yet)."""
    counters = (totals or {}).get("counters", {})
    return {
        "unitsSold": counters.get("units", 0),
        "revenue": from_cents(counters.get("revenueCents", 0)),
    }
