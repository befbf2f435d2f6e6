"""The write side's functions: one line per command route, plus the outbox relay timer."""

from __future__ import annotations

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


def command(method: str, path: str, handler: Callable, summary: str, tag: str, body: type,
            response: type = models.Accepted, errors: tuple[int, ...] = COMMAND_ERRORS,
            conditional: bool = False) -> None:
    """Expose `handler(tx, ctx, body, **route_params)` as a command route."""
    name = handler.__name__

    def adapter(request: Request) -> Response:
        return execute(request, name, lambda tx, ctx: handler(tx, ctx, request.body, **request.route_params))

    http_route(bp, method, path, name=name, summary=summary, tag=tag, body=body, response=response, status=202,
               errors=errors, idempotent=True, conditional=conditional)(adapter)


command("POST", "customers", handlers.register_customer, "Register a customer", "customers",
        models.RegisterCustomer)
command("POST", "products", handlers.create_product, "Add a product to the catalog", "products",
        models.CreateProduct)
command("POST", "orders", handlers.place_order, "Place an order (reserves stock, checks credit)", "orders",
        models.PlaceOrder, models.OrderAccepted)


@bp.function_name("outbox_relay")
@bp.timer_trigger(arg_name="timer", schedule="*/10 * * * * *", run_on_startup=False, use_monitor=False)
def outbox_relay(timer: func.TimerRequest) -> None:
    """Publish events a crash or an Event Hubs outage left unsent (timer triggers run as a singleton)."""
    outbox.relay(database(), publisher())
