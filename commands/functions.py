"""The write side's functions: one line per command route, plus the outbox relay timer."""

from __future__ import annotations

import re
from collections.abc import Callable

import azure.functions as func

from commands import handlers, models
from commands.execution import execute
from shared import outbox
from shared.auth import ADMIN, CATALOG, CUSTOMER, FULFILLMENT
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
    body: type,
    response: type,
    summary: str,
    roles: tuple[str, ...],
) -> None:
    """Expose `handler(tx, ctx, body, **route_params)` as a command route (route params in snake_case).

    A route with an id in its path acts on an existing aggregate: it can answer 404 and
    412, and takes If-Match.
    """
    name = handler.__name__
    existing = "{" in path

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
        tag=path.split("/")[0],
        body=body,
        response=response,
        status=202,
        errors=EXISTING_ERRORS if existing else COMMAND_ERRORS,
        idempotent=True,
        conditional=existing,
        roles=roles,
    )(adapter)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


# fmt: off
# Who may run each command (shared.auth): Orders.Customer only on their own records.
SELF_SERVICE = (ADMIN, CUSTOMER)
CATALOG_WORK = (ADMIN, CATALOG)
SHIPPING = (ADMIN, FULFILLMENT)

# The command routes of the contract (docs/api.md), one per line.
command("POST",   "customers",                            handlers.register_customer,       models.RegisterCustomer, models.Accepted,      "Register a customer",                              SELF_SERVICE)
command("PATCH",  "customers/{customerId}",               handlers.change_customer,         models.ChangeCustomer,   models.Accepted,      "Change a customer's name, email or credit limit",  SELF_SERVICE)
command("POST",   "products",                             handlers.create_product,          models.CreateProduct,    models.Accepted,      "Add a product to the catalog",                     CATALOG_WORK)
command("PATCH",  "products/{productId}",                 handlers.change_product,          models.ChangeProduct,    models.Accepted,      "Change a product's name or price",                 CATALOG_WORK)
command("POST",   "products/{productId}/stock",           handlers.adjust_stock,            models.AdjustStock,      models.StockAccepted, "Adjust stock by a delta",                          CATALOG_WORK)
command("POST",   "orders",                               handlers.place_order,             models.PlaceOrder,       models.OrderAccepted, "Place an order (reserves stock, checks credit)",   SELF_SERVICE)
command("POST",   "orders/{orderId}/items",               handlers.add_item,                models.AddItem,          models.OrderAccepted, "Add a line, or quantity to a line",                SELF_SERVICE)
command("DELETE", "orders/{orderId}/items/{productId}",   handlers.remove_item,             models.NoBody,           models.OrderAccepted, "Remove a line (releases stock)",                   SELF_SERVICE)
command("PUT",    "orders/{orderId}/shipping-address",    handlers.change_shipping_address, models.Address,          models.Accepted,      "Change the shipping address",                      SELF_SERVICE)
command("POST",   "orders/{orderId}/ship",                handlers.ship_order,              models.ShipOrder,        models.OrderAccepted, "Ship a placed order",                              SHIPPING)
command("POST",   "orders/{orderId}/deliver",             handlers.deliver_order,           models.NoBody,           models.OrderAccepted, "Mark a shipped order delivered",                   SHIPPING)
command("POST",   "orders/{orderId}/cancel",              handlers.cancel_order,            models.CancelOrder,      models.OrderAccepted, "Cancel a placed order (releases stock)",           SELF_SERVICE)
# fmt: on


@bp.function_name("outbox_relay")
@bp.timer_trigger(
    arg_name="timer", schedule="*/10 * * * * *", run_on_startup=False, use_monitor=False
)
def outbox_relay(timer: func.TimerRequest) -> None:
    """Publish events a crash or an Event Hubs outage left unsent (timer triggers run as a singleton)."""
    outbox.relay(database(), publisher())
