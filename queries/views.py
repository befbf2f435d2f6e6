"""What each query route answers, without HTTP: which read-model documents it reads, the
search rules, and how documents become response bodies.

Views take plain arguments (ids from the path, validated query parameters, the caller)
and return the response, or raise the project's problem errors. Cosmos is reached only
through queries.reads and queries.paging, so a test can stand a fake container in for it.

Cosmos requests per call (the local stand-in answers a cross-partition query in one;
Azure adds a query-plan request and one request per physical partition):
- order: 1 point read (+1 per re-read while waiting for minVersion).
- customer: 2 point reads (the customer; their totals document).
- customer_orders: 1 query page (+1 one-item peek when a full page has a
  continuation; +1 point read of the customer when the first page is empty).
- search_orders with a customerId: 1 query page (+1 peek), +1 point read of the
  customer when q is given; without: 1 cross-partition TOP query.
- product: 2 point reads (the product; its sales totals document).
- sales_stats: 1 cross-partition query over the days' shard totals (4 per day).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

from queries import aggregates, models, order_search, paging, reads
from shared.errors import Forbidden, known_id
from shared.formats import UUID_RE
from shared.http import Response
from shared.read_model import AGGREGATE, AGGREGATE_ID, SALES_SHARDS_PER_DAY

# Ids are server-generated UUIDs: anything else cannot exist (and never reaches Cosmos).
Document = dict[str, Any]


class Caller(Protocol):
    """Who asks (shared.http.Request is one): `owner` is the subject whose records alone
    they may see, or None for any record."""

    @property
    def owner(self) -> str | None: ...

    def check_owner(self, owner_subject: str | None, what: str) -> None: ...


def _check_customer_owner(caller: Caller, customer_id: str) -> None:
    """For a self-service caller: 404 unless `customer_id` is their own record."""
    if caller.owner is None:
        return
    document = (
        reads.read_document("customers", customer_id, customer_id)
        if UUID_RE.match(customer_id)
        else None
    )
    caller.check_owner(
        document.get("ownerSubject") if document else None, f"Customer {customer_id}"
    )


# --- single documents ----------------------------------------------------------------


@dataclass(frozen=True)
class DocumentView:
    """A document read by its id, which is also its partition key: `shape` makes the
    response body; `owner_of` names the subject a self-service caller must be to see it."""

    container: str
    what: str
    shape: Callable[[Document], Document]
    owner_of: Callable[[Document], str | None] | None = None


async def read_one(
    view: DocumentView, doc_id: str, params: models.ReadYourWrites, caller: Caller
) -> Response:
    """The document, with read-your-writes (`minVersion`, `waitMs`) and its version as
    ETag; a wait holds no thread (queries/reads.py)."""
    doc_id = known_id(doc_id, view.what)

    def read() -> Document | None:
        document = reads.read_document(view.container, doc_id, doc_id)
        if document is not None and view.owner_of is not None:
            caller.check_owner(view.owner_of(document), f"{view.what} {doc_id}")
        return document

    return await reads.read_with_min_version(
        read, params.minVersion, params.waitMs, f"{view.what} {doc_id}", view.shape
    )


def customer_detail(document: Document) -> Document:
    """The customer document plus the totals the projection keeps beside their orders."""
    totals = reads.read_document("customer-orders", AGGREGATE_ID, document["id"])
    return {
        "id": document["id"],
        "name": document["name"],
        "email": document["email"],
        "creditLimit": document["creditLimit"],
        **aggregates.customer_totals(totals),
        "version": document["version"],
    }


def product_detail(document: Document) -> Document:
    """The product document plus the sales totals the projection keeps for it."""
    totals = reads.read_document("product-sales", AGGREGATE_ID, document["id"])
    return {
        "id": document["id"],
        "sku": document["sku"],
        "name": document["name"],
        "price": document["price"],
        "stock": document["stock"],
        **aggregates.product_sales(totals),
        "version": document["version"],
    }


ORDER = DocumentView(
    "orders",
    "Order",
    models.order_detail,
    owner_of=lambda document: document["customer"].get("ownerSubject"),
)
CUSTOMER = DocumentView(
    "customers",
    "Customer",
    customer_detail,
    owner_of=lambda document: document.get("ownerSubject"),
)
PRODUCT = DocumentView("products", "Product", product_detail)


# --- order lists ---------------------------------------------------------------------


def customer_orders(
    customer_id: str, params: models.CustomerOrdersParams, caller: Caller
) -> Document:
    """A page of one customer's orders, newest first."""
    customer_id = known_id(customer_id, "Customer")
    _check_customer_owner(caller, customer_id)
    query = order_search.customer_orders_query(customer_id, status=params.status)
    page = paging.single_partition_page(
        query, params.pageSize, params.continuationToken
    )
    # Only an empty first page can mean "no such customer": summaries exist only for
    # customers the same projection has already written.
    if (
        not page.items
        and params.continuationToken is None
        and reads.read_document("customers", customer_id, customer_id) is None
    ):
        raise reads.not_projected(f"Customer {customer_id}")
    return page.as_json()


def _filters(params: models.OrderSearchParams) -> order_search.Filters:
    return {
        "status": params.status,
        "min_total": params.minTotal,
        "max_total": params.maxTotal,
        "placed_from": params.placedFrom,
        "placed_to": params.placedTo,
    }


def search_orders(params: models.OrderSearchParams, caller: Caller) -> Document:
    """A page of orders matching the filters, newest first: across customers, or within
    one customer's orders when `customerId` is given (a self-service caller must give
    their own)."""
    if caller.owner is not None:
        if params.customerId is None:
            raise Forbidden(
                "Search your own orders with customerId=<your customer id>."
            )
        _check_customer_owner(caller, params.customerId)
    if params.customerId is None:
        query = order_search.orders_query(**_filters(params), q=params.q)
        page = paging.cross_partition_page(
            query, params.pageSize, params.continuationToken
        )
        return page.as_json()
    return _search_customer_orders(params.customerId, params)


def _search_customer_orders(
    customer_id: str, params: models.OrderSearchParams
) -> Document:
    # One customer: their own partition of `customer-orders`. Its summaries carry no
    # customer name, so q matching the customer's name matches all of their orders.
    if not UUID_RE.match(customer_id):
        return paging.Page([], None).as_json()
    product_text = params.q
    if params.q is not None:
        customer = reads.read_document("customers", customer_id, customer_id)
        if customer is None:
            return paging.Page([], None).as_json()
        if params.q in customer["nameSearch"]:
            product_text = None
    query = order_search.customer_orders_query(
        customer_id, **_filters(params), product_text=product_text
    )
    page = paging.single_partition_page(
        query, params.pageSize, params.continuationToken
    )
    return page.as_json()


# --- statistics ----------------------------------------------------------------------

DAILY_TOTALS = (
    "SELECT c.day, c.counters, c.labels FROM c WHERE c.kind = @totals "
    "AND c.shards = @shards AND c.day >= @from AND c.day <= @to"
)


def sales_stats(first: date, last: date) -> Document:
    """Daily sales, totals and top products of the UTC days `first` to `last`."""
    documents = reads.query_all(
        "daily-sales",
        DAILY_TOTALS,
        [
            {"name": "@totals", "value": AGGREGATE},
            # Never totals of another shard count, not rebuilt yet (shared/read_model.py).
            {"name": "@shards", "value": SALES_SHARDS_PER_DAY},
            {"name": "@from", "value": first.isoformat()},
            {"name": "@to", "value": last.isoformat()},
        ],
    )
    return aggregates.sales_stats(documents, first, last)
