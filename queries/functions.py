"""The query routes: one declaration per route, each a point read or single-partition query."""

from __future__ import annotations

import azure.functions as func

from queries import models
from queries.reads import read_document, read_with_min_version
from shared.http import Request, Response, http_route

bp = func.Blueprint()


@http_route(
    bp,
    "GET",
    "orders/{orderId}",
    name="get_order",
    summary="Order detail",
    tag="orders",
    query=models.ReadYourWrites,
    response=models.OrderDetail,
    errors=(400, 404),
)
def get_order(request: Request) -> Response:
    order_id = request.route_params["orderId"].lower()
    params: models.ReadYourWrites = request.params
    return read_with_min_version(
        lambda: read_document("orders", order_id, order_id),
        params.minVersion,
        params.waitMs,
        f"Order {order_id}",
        models.order_detail,
    )
