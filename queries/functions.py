"""The query routes: point reads where the id is known, single-partition queries where
the partition is known, and one cross-partition query each for order search and stats.

Cosmos requests per call (the local stand-in answers a cross-partition query in one;
Azure adds a query-plan request and one request per physical partition):
- GET orders/{id}: 1 point read (+1 per 50 ms re-read while waiting for minVersion).
- GET customers/{id}: 2 point reads (the customer; their totals document).
- GET customers/{id}/orders: 1 query page (+1 one-item peek when a full page has a
  continuation; +1 point read of the customer when the first page is empty).
- GET orders?customerId=: 1 query page (+1 peek), +1 point read of the customer when q is given.
- GET orders: 1 cross-partition TOP query.
- GET products/{id}: 2 point reads (the product; its sales totals document).
- GET stats/sales: 1 cross-partition query over the days' shard totals (8 per day).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, cast

import azure.functions as func

from queries import aggregates, models, order_search, paging
from queries.reads import read_document, read_with_min_version
from shared.auth import ADMIN, CATALOG, CUSTOMER, FULFILLMENT, SUPPORT
from shared.cosmos import REQUEST_TIMEOUT_SECONDS, container
from shared.errors import Forbidden, NotFound
from shared.http import Request, Response, http_route
from shared.read_model import AGGREGATE, AGGREGATE_ID

bp = func.Blueprint()

SINGLE = (400, 404)
# Who may read orders and customers; Orders.Customer only their own (ownership).
READ_ORDERS = (ADMIN, FULFILLMENT, SUPPORT, CUSTOMER)
# Ids are server-generated UUIDs: anything else cannot exist (and never reaches Cosmos).
_PLAUSIBLE_ID = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
)
FETCH_ALL = 1000  # items per request when a query reads everything it matches


def _id(request: Request, name: str, what: str) -> str:
    value = request.route_params[name].lower()
    if not _PLAUSIBLE_ID.match(value):
        raise NotFound(f"{what} {value!r} does not exist.")
    return value


def _check_customer_owner(request: Request, customer_id: str) -> None:
    """For a self-service caller: 404 unless `customer_id` is their own record."""
    if request.owner is None:
        return
    document = (
        read_document("customers", customer_id, customer_id)
        if _PLAUSIBLE_ID.match(customer_id)
        else None
    )
    request.check_owner(
        document.get("ownerSubject") if document else None, f"Customer {customer_id}"
    )


def _not_projected(what: str) -> NotFound:
    return NotFound(f"{what} does not exist (or is not projected yet).")


def document_route(
    path: str,
    name: str,
    summary: str,
    response: type,
    shape: Callable[[dict[str, Any]], dict[str, Any]],
    roles: tuple[str, ...],
    owner_of: Callable[[dict[str, Any]], str | None] | None = None,
) -> None:
    """A single-document route: a point read by the id in the path (its partition key),
    with read-your-writes (`minVersion`, `waitMs`), shaped for the API by `shape`;
    `owner_of` names the subject a self-service caller must be to see the document."""
    match = re.fullmatch(r"(\w+)/\{(\w+)\}", path)
    if match is None:
        raise ValueError(f"a document route reads <container>/{{<id>}}, not {path}")
    container_name, param = match.groups()
    what = container_name[:-1].capitalize()

    def handler(request: Request) -> Response:
        doc_id = _id(request, param, what)
        params = cast(models.ReadYourWrites, request.params)

        def read() -> dict[str, Any] | None:
            document = read_document(container_name, doc_id, doc_id)
            if document is not None and owner_of is not None:
                request.check_owner(owner_of(document), f"{what} {doc_id}")
            return document

        return read_with_min_version(
            read,
            params.minVersion,
            params.waitMs,
            f"{what} {doc_id}",
            shape,
        )

    http_route(
        bp,
        "GET",
        path,
        name=name,
        summary=summary,
        tag=container_name,
        query=models.ReadYourWrites,
        response=response,
        errors=SINGLE,
        roles=roles,
    )(handler)


def customer_detail(document: dict[str, Any]) -> dict[str, Any]:
    """The customer document plus the totals the projection keeps beside their orders."""
    totals = read_document("customer-orders", AGGREGATE_ID, document["id"])
    return {
        "id": document["id"],
        "name": document["name"],
        "email": document["email"],
        "creditLimit": document["creditLimit"],
        **aggregates.customer_totals(totals),
        "version": document["version"],
    }


document_route(
    "orders/{orderId}",
    "get_order",
    "Order detail",
    models.OrderDetail,
    models.order_detail,
    READ_ORDERS,
    owner_of=lambda document: document["customer"].get("ownerSubject"),
)
document_route(
    "customers/{customerId}",
    "get_customer",
    "Customer with order totals",
    models.CustomerDetail,
    customer_detail,
    READ_ORDERS,
    owner_of=lambda document: document.get("ownerSubject"),
)


@http_route(
    bp,
    "GET",
    "customers/{customerId}/orders",
    name="list_customer_orders",
    summary="A customer's orders, newest first",
    tag="customers",
    query=models.CustomerOrdersParams,
    response=models.OrderPage,
    errors=SINGLE,
    roles=READ_ORDERS,
)
def list_customer_orders(request: Request) -> Response:
    customer_id = _id(request, "customerId", "Customer")
    params = cast(models.CustomerOrdersParams, request.params)
    _check_customer_owner(request, customer_id)
    query = order_search.customer_orders_query(customer_id, status=params.status)
    page = paging.single_partition_page(
        query, params.pageSize, params.continuationToken
    )
    # Only an empty first page can mean "no such customer": summaries exist only for
    # customers the same projection has already written.
    if (
        not page.items
        and params.continuationToken is None
        and read_document("customers", customer_id, customer_id) is None
    ):
        raise _not_projected(f"Customer {customer_id}")
    return Response(page.as_json())


@http_route(
    bp,
    "GET",
    "orders",
    name="search_orders",
    summary="Search orders, newest first",
    tag="orders",
    query=models.OrderSearchParams,
    response=models.OrderPage,
    errors=(400, 403),
    roles=READ_ORDERS,
)
def search_orders(request: Request) -> Response:
    params = cast(models.OrderSearchParams, request.params)
    if request.owner is not None:
        # Self-service: only within one's own customer record, never across customers.
        if params.customerId is None:
            raise Forbidden(
                "Search your own orders with customerId=<your customer id>."
            )
        _check_customer_owner(request, params.customerId.lower())
    filters: dict[str, Any] = {
        "status": params.status,
        "min_total": params.minTotal,
        "max_total": params.maxTotal,
        "placed_from": params.placedFrom,
        "placed_to": params.placedTo,
    }
    if params.customerId is None:
        query = order_search.orders_query(**filters, q=params.q)
        page = paging.cross_partition_page(
            query, params.pageSize, params.continuationToken
        )
        return Response(page.as_json())

    # One customer: their own partition of `customer-orders`. Its summaries carry no
    # customer name, so q matching the customer's name matches all of their orders.
    if not _PLAUSIBLE_ID.match(params.customerId.lower()):
        return Response(paging.Page([], None).as_json())
    product_text = params.q
    if params.q is not None:
        customer = read_document("customers", params.customerId, params.customerId)
        if customer is None:
            return Response(paging.Page([], None).as_json())
        if params.q in customer["nameSearch"]:
            product_text = None
    query = order_search.customer_orders_query(
        params.customerId, **filters, product_text=product_text
    )
    page = paging.single_partition_page(
        query, params.pageSize, params.continuationToken
    )
    return Response(page.as_json())


def product_detail(document: dict[str, Any]) -> dict[str, Any]:
    """The product document plus the sales totals the projection keeps for it."""
    totals = read_document("product-sales", AGGREGATE_ID, document["id"])
    return {
        "id": document["id"],
        "sku": document["sku"],
        "name": document["name"],
        "price": document["price"],
        "stock": document["stock"],
        **aggregates.product_sales(totals),
        "version": document["version"],
    }


document_route(
    "products/{productId}",
    "get_product",
    "Product with units sold and revenue",
    models.ProductDetail,
    product_detail,
    (ADMIN, CATALOG, SUPPORT, CUSTOMER),
)


@http_route(
    bp,
    "GET",
    "stats/sales",
    name="get_sales_stats",
    summary="Daily sales, totals and top products (UTC days)",
    tag="stats",
    query=models.SalesStatsParams,
    response=models.SalesStats,
    errors=(400,),
    roles=(ADMIN, CATALOG, SUPPORT),
)
def get_sales_stats(request: Request) -> Response:
    params: Any = request.params  # a model built at run time (`from` is a keyword)
    first, last = getattr(params, "from"), params.to
    documents = container("daily-sales").query_items(
        "SELECT c.day, c.counters, c.labels FROM c "
        "WHERE c.kind = @totals AND c.day >= @from AND c.day <= @to",
        parameters=[
            {"name": "@totals", "value": AGGREGATE},
            {"name": "@from", "value": first.isoformat()},
            {"name": "@to", "value": last.isoformat()},
        ],
        enable_cross_partition_query=True,
        max_item_count=FETCH_ALL,
        timeout=REQUEST_TIMEOUT_SECONDS,
    )
    return Response(aggregates.sales_stats(documents, first, last))
