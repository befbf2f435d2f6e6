"""The query routes: one declaration each (path, roles, parameters, response, errors),
adapting the request to a view of queries.views, which reads the read model."""

from __future__ import annotations

from typing import TypeVar, cast

import azure.functions as func
from pydantic import BaseModel

from queries import models, views
from shared.auth import ADMIN, CATALOG, CUSTOMER, FULFILLMENT, SUPPORT
from shared.http import Request, Response, http_route

bp = func.Blueprint()

SINGLE = (400, 404)
# Who may read orders and customers; Orders.Customer only their own (ownership).
READ_ORDERS = (ADMIN, FULFILLMENT, SUPPORT, CUSTOMER)
READ_PRODUCTS = (ADMIN, CATALOG, SUPPORT, CUSTOMER)
READ_STATS = (ADMIN, CATALOG, SUPPORT)

P = TypeVar("P", bound=BaseModel)


def _params(request: Request, model: type[P]) -> P:
    # http_route validated the query string into the route's `query` model.
    return cast(P, request.params)


def document_route(
    path: str,
    name: str,
    summary: str,
    response: type[BaseModel],
    view: views.DocumentView,
    roles: tuple[str, ...],
) -> None:
    """A single-document route: the id in the path (its only parameter) names the
    document. `async def`, so a read-your-writes wait holds no worker thread."""
    param = path[path.index("{") + 1 : path.index("}")]

    async def handler(request: Request) -> Response:
        params = _params(request, models.ReadYourWrites)
        return await views.read_one(view, request.route_params[param], params, request)

    http_route(
        bp,
        "GET",
        path,
        name=name,
        summary=summary,
        tag=view.container,
        query=models.ReadYourWrites,
        response=response,
        errors=SINGLE,
        roles=roles,
    )(handler)


document_route(
    "orders/{orderId}",
    "get_order",
    "Order detail",
    models.OrderDetail,
    views.ORDER,
    READ_ORDERS,
)
document_route(
    "customers/{customerId}",
    "get_customer",
    "Customer with order totals",
    models.CustomerDetail,
    views.CUSTOMER,
    READ_ORDERS,
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
    params = _params(request, models.CustomerOrdersParams)
    customer_id = request.route_params["customerId"]
    return Response(views.customer_orders(customer_id, params, request))


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
    params = _params(request, models.OrderSearchParams)
    return Response(views.search_orders(params, request))


document_route(
    "products/{productId}",
    "get_product",
    "Product with units sold and revenue",
    models.ProductDetail,
    views.PRODUCT,
    READ_PRODUCTS,
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
    roles=READ_STATS,
)
def get_sales_stats(request: Request) -> Response:
    params = _params(request, models.SalesStatsParams)
    return Response(views.sales_stats(*params.days()))
