"""The write side's functions: one line per command route, plus the outbox relay timer.

The route adapter is the HTTP edge of a command: it reads the headers a command
understands (Idempotency-Key, If-Match) into a plain `CommandCall`, runs it, and
turns the `CommandResult` into the response.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import azure.functions as func

from commands import handlers, models
from commands.execution import CommandCall, CommandResult, Decide, Outcome, execute
from shared import outbox
from shared.auth import ADMIN, CATALOG, CUSTOMER, FULFILLMENT
from shared.errors import ValidationFailed
from shared.formats import IDEMPOTENCY_KEY_RE
from shared.http import Request, Response, http_route
from shared.publisher import EventPublisher, publisher
from shared.sql.db import Database, database

bp = func.Blueprint()

COMMAND_ERRORS = (400, 409, 413, 415, 422)
EXISTING_ERRORS = (400, 404, 409, 412, 413, 415, 422)


def parse_if_match(value: str | None) -> int | None:
    """The version an If-Match header names (quoted, a weak W/ prefix ignored)."""
    if value is None:
        return None
    text = value.strip().removeprefix("W/").strip('"')
    if not (text.isascii() and text.isdigit() and len(text) <= 9):
        raise ValidationFailed('If-Match must be a version in quotes, like "3".')
    return int(text)


def parse_idempotency_key(value: str | None) -> str | None:
    if value is not None and not IDEMPOTENCY_KEY_RE.fullmatch(value):
        raise ValidationFailed(
            "Idempotency-Key must be 1 to 200 printable ASCII characters."
        )
    return value


def command_call(request: Request, route: str) -> CommandCall:
    """The command a request asks for, its headers read."""
    key = parse_idempotency_key(request.header("idempotency-key"))
    return CommandCall(
        route=route,
        correlation_id=request.correlation_id,
        body=request.body,
        route_params=request.route_params,
        expected_version=parse_if_match(request.header("if-match")),
        idempotency_key=key,
        principal=request.principal,
        owner=request.owner,
    )


def response_of(result: CommandResult) -> Response:
    return Response(result.body, result.status, result.headers())


def run_command(
    request: Request,
    route: str,
    decide: Decide,
    db: Database | None = None,
    events_to: EventPublisher | None = None,
) -> Response:
    """Run the command `request` asks for and answer it."""
    return response_of(execute(command_call(request, route), decide, db, events_to))


def command(
    method: str,
    path: str,
    handler: Callable[..., Outcome],
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
        return run_command(
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
