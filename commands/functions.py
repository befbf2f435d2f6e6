"""The write side's functions: one line per command route, plus the outbox relay timer."""

from __future__ import annotations

import re
from collections.abc import Callable

import azure.functions as func

from commands import handlers, models
from commands.execution import execute
from shared import outbox
from shared.http import Request, Response, http_route
from shared.publisher import publisher
from shared.sql.db import database

bp = func.Blueprint()

COMMAND_ERRORS = (400, 409, 413, 415, 422)
EXISTING_ERRORS = (400, 404, 409, 412, 413, 415, 422)


def command(
    method: str,
    path: str,
    handler: Callable,
    summary: str,
    tag: str,
    body: type,
    response: type = models.Accepted,
    errors: tuple[int, ...] = COMMAND_ERRORS,
    conditional: bool = False,
) -> None:
    """Expose `handler(tx, ctx, body, **route_params)` as a command route (route params in snake_case)."""
    name = handler.__name__

    def adapter(request: Request) -> Response:
        params = {_snake(k): v for k, v in request.route_params.items()}
        return execute(
            request, name, lambda tx, ctx: handler(tx, ctx, request.body, **params)
        )

    http_route(
        bp,
        method,
        path,
        name=name,
        summary=summary,
        tag=tag,
        body=body,
        response=response,
        status=202,
        errors=errors,
        idempotent=True,
        conditional=conditional,
    )(adapter)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


command(
    "POST",
    "customers",
    handlers.register_customer,
    "Register a customer",
    "customers",
    models.RegisterCustomer,
)
command(
    "POST",
    "products",
    handlers.create_product,
    "Add a product to the catalog",
    "products",
    models.CreateProduct,
)
command(
    "PATCH",
    "customers/{customerId}",
    handlers.change_customer,
    "Change a customer's name, email or credit limit",
    "customers",
    models.ChangeCustomer,
    errors=EXISTING_ERRORS,
    conditional=True,
)
command(
    "PATCH",
    "products/{productId}",
    handlers.change_product,
    "Change a product's name or price",
    "products",
    models.ChangeProduct,
    errors=EXISTING_ERRORS,
    conditional=True,
)
command(
    "POST",
    "products/{productId}/stock",
    handlers.adjust_stock,
    "Adjust stock by a delta",
    "products",
    models.AdjustStock,
    models.StockAccepted,
    errors=EXISTING_ERRORS,
    conditional=True,
)
command(
    "POST",
    "orders",
    handlers.place_order,
    "Place an order (reserves stock, checks credit)",
    "orders",
    models.PlaceOrder,
    models.OrderAccepted,
)
command(
    "POST",
    "orders/{orderId}/items",
    handlers.add_item,
    "Add a line, or quantity to a line",
    "orders",
    models.AddItem,
    models.OrderAccepted,
    errors=EXISTING_ERRORS,
    conditional=True,
)
command(
    "DELETE",
    "orders/{orderId}/items/{productId}",
    handlers.remove_item,
    "Remove a line (releases stock)",
    "orders",
    models.NoBody,
    models.OrderAccepted,
    errors=EXISTING_ERRORS,
    conditional=True,
)
command(
    "PUT",
    "orders/{orderId}/shipping-address",
    handlers.change_shipping_address,
    "Change the shipping address",
    "orders",
    models.Address,
    errors=EXISTING_ERRORS,
    conditional=True,
)
command(
    "POST",
    "orders/{orderId}/ship",
    handlers.ship_order,
    "Ship a placed order",
    "orders",
    models.ShipOrder,
    models.OrderAccepted,
    errors=EXISTING_ERRORS,
    conditional=True,
)
command(
    "POST",
    "orders/{orderId}/deliver",
    handlers.deliver_order,
    "Mark a shipped order delivered",
    "orders",
    models.NoBody,
    models.OrderAccepted,
    errors=EXISTING_ERRORS,
    conditional=True,
)
command(
    "POST",
    "orders/{orderId}/cancel",
    handlers.cancel_order,
    "Cancel a placed order (releases stock)",
    "orders",
    models.CancelOrder,
    models.OrderAccepted,
    errors=EXISTING_ERRORS,
    conditional=True,
)


@bp.function_name("outbox_relay")
@bp.timer_trigger(
    arg_name="timer", schedule="*/10 * * * * *", run_on_startup=False, use_monitor=False
)
def outbox_relay(timer: func.TimerRequest) -> None:
    """Publish events a crash or an Event Hubs outage left unsent (timer triggers run as a singleton)."""
    outbox.relay(database(), publisher())
