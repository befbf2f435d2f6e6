"""Order list queries as data: parameterized Cosmos SQL built from validated filters. Pure.

Only fixed SQL text is ever written here; every value a client sends travels as a
parameter. Pages are newest first, `ORDER BY c.placedAt DESC, c.id DESC` (the id
breaks ties, so the order is total and paging is exact); with a status filter the
equality field leads the ORDER BY, which changes nothing in the result but lets
the `(status, placedAt DESC, id DESC)` composite index serve filter and sort.
Each ORDER BY here has its composite index in shared/topology.json.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, TypedDict

from queries import tokens
from shared.encoding import to_jsonable
from shared.formats import instant
from shared.read_model import CONTRIBUTION

ORDERS = "orders"
CUSTOMER_ORDERS = "customer-orders"

# The order summary. On `orders` the item count sits inside the full order state,
# and `order` is a reserved word of Cosmos SQL, hence the bracket.
SUMMARY_FIELDS = {
    ORDERS: 'c.id, c.status, c["order"].itemCount AS itemCount, c.total, c.placedAt, c.version',
    CUSTOMER_ORDERS: "c.id, c.status, c.itemCount, c.total, c.placedAt, c.version",
}
ORDER_BY = "c.placedAt DESC, c.id DESC"
ORDER_BY_STATUS = "c.status ASC, c.placedAt DESC, c.id DESC"
AFTER = (
    "(c.placedAt < @afterPlacedAt OR (c.placedAt = @afterPlacedAt AND c.id < @afterId))"
)


class Filters(TypedDict):
    """What both order lists filter on; None: no condition."""

    status: str | None
    min_total: Decimal | None
    max_total: Decimal | None
    placed_from: datetime | None
    placed_to: datetime | None


@dataclass(frozen=True)
class OrderQuery:
    """One order list query: its container, partition (None: all) and filters."""

    container: str
    partition_key: str | None
    conditions: tuple[str, ...] = ()
    parameters: tuple[dict[str, Any], ...] = ()
    by_status: bool = False

    @property
    def order_by(self) -> str:
        return ORDER_BY_STATUS if self.by_status else ORDER_BY

    def sql(self, *, after: bool = False, top: bool = False) -> str:
        conditions = [*self.conditions, AFTER] if after else list(self.conditions)
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        head = "SELECT TOP @top " if top else "SELECT "
        return f"{head}{SUMMARY_FIELDS[self.container]} FROM c{where} ORDER BY {self.order_by}"

    def fingerprint(self) -> str:
        # Bound to the filtered query, not to the page size or the paging position.
        return tokens.fingerprint(
            f"{self.container}/{self.partition_key or '*'}",
            self.sql(),
            list(self.parameters),
        )


def _money(value: Decimal) -> Any:
    # A JSON number, as the documents hold money; normalized first, so that 2 and 2.00
    # make the same parameter (and the same query fingerprint).
    return to_jsonable(value.normalize())


def _filters(
    status: str | None,
    min_total: Decimal | None,
    max_total: Decimal | None,
    placed_from: datetime | None,
    placed_to: datetime | None,
) -> tuple[list[str], list[dict[str, Any]]]:
    conditions: list[str] = []
    parameters: list[dict[str, Any]] = []

    def add(condition: str, name: str, value: Any) -> None:
        conditions.append(condition)
        parameters.append({"name": name, "value": value})

    if status is not None:
        add("c.status = @status", "@status", status)
    if min_total is not None:
        add("c.total >= @minTotal", "@minTotal", _money(min_total))
    if max_total is not None:
        add("c.total <= @maxTotal", "@maxTotal", _money(max_total))
    if placed_from is not None:
        add("c.placedAt >= @placedFrom", "@placedFrom", instant(placed_from))
    if placed_to is not None:
        add("c.placedAt <= @placedTo", "@placedTo", instant(placed_to))
    return conditions, parameters


def orders_query(
    *,
    status: str | None = None,
    min_total: Decimal | None = None,
    max_total: Decimal | None = None,
    placed_from: datetime | None = None,
    placed_to: datetime | None = None,
    q: str | None = None,
) -> OrderQuery:
    """Across all customers, on `orders`: q matches a product name or the customer's name."""
    conditions, parameters = _filters(
        status, min_total, max_total, placed_from, placed_to
    )
    if q is not None:
        conditions.append(
            "(CONTAINS(c.productSearch, @q) OR CONTAINS(c.customerSearch, @q))"
        )
        parameters.append({"name": "@q", "value": q})
    return OrderQuery(
        ORDERS, None, tuple(conditions), tuple(parameters), by_status=status is not None
    )


def customer_orders_query(
    customer_id: str,
    *,
    status: str | None = None,
    min_total: Decimal | None = None,
    max_total: Decimal | None = None,
    placed_from: datetime | None = None,
    placed_to: datetime | None = None,
    product_text: str | None = None,
) -> OrderQuery:
    """One customer's orders, on the `customer-orders` partition of that customer.

    The partition key is also a WHERE condition: the local Cosmos stand-in ignores
    `partition_key=` without it, and it costs nothing in Azure.
    """
    conditions, parameters = _filters(
        status, min_total, max_total, placed_from, placed_to
    )
    # The partition also holds the customer's totals document: only order summaries.
    conditions[0:0] = ["c.customerId = @customerId", "c.kind = @kind"]
    parameters[0:0] = [
        {"name": "@customerId", "value": customer_id},
        {"name": "@kind", "value": CONTRIBUTION},
    ]
    if product_text is not None:
        conditions.append("CONTAINS(c.productSearch, @q)")
        parameters.append({"name": "@q", "value": product_text})
    return OrderQuery(
        CUSTOMER_ORDERS,
        customer_id,
        tuple(conditions),
        tuple(parameters),
        by_status=status is not None,
    )
