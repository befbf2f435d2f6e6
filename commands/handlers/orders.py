"""Order commands: place, add and remove lines, change the address, ship, deliver, cancel.

Each loads the order (locked), lets the domain decide, then saves the order, moves
stock and credit, records who made the change, and returns the events.
"""

from __future__ import annotations

import uuid

from commands import models, repository
from commands.domain import (
    Order,
    OrderLine,
    Product,
    credit_refused,
    merge_lines,
    stock_refused,
)
from commands.events import OrderEvents, ProductEvents
from commands.execution import CommandContext, Outcome, accepted
from commands.handlers.steps import address_of
from shared.errors import FieldError, Forbidden, NotFound, ValidationFailed, known_id
from shared.events import Event, EventType
from shared.sql.db import Transaction


def _reserve_lines(
    tx: Transaction, ctx: CommandContext, cmd: models.PlaceOrder
) -> tuple[list[OrderLine], list[Product]]:
    """Take every line's units from stock: the lines, and the products as reserved."""
    lines, reserved = [], []
    missing: list[str] = []
    short: list[tuple[Product, int]] = []
    for product_id, quantity in merge_lines(
        [(i.productId, i.quantity) for i in cmd.items]
    ):
        product = repository.reserve_stock(tx, product_id, quantity, ctx.now)
        if product is None:
            current = repository.get_product(tx, product_id)
            if current is None:
                missing.append(product_id)
            else:
                short.append((current, quantity))
            continue
        reserved.append(product)
        lines.append(OrderLine.of(product, quantity))
    if missing:
        raise ValidationFailed(
            "The order refers to unknown products.",
            [FieldError("items", f"no product {pid}") for pid in missing],
        )
    if short:
        raise stock_refused(short)
    return lines, reserved


def place_order(
    tx: Transaction, ctx: CommandContext, cmd: models.PlaceOrder
) -> Outcome:
    customer_id = cmd.customerId.lower()
    owner = repository.get_customer(tx, customer_id)
    if owner is None:
        raise ValidationFailed(
            "The order refers to an unknown customer.",
            [FieldError("customerId", f"no customer {customer_id}")],
        )
    if ctx.owner is not None and owner.owner_subject != ctx.owner:
        raise Forbidden("You can place orders only for your own customer record.")
    lines, reserved = _reserve_lines(tx, ctx, cmd)
    order = Order.place(
        str(uuid.uuid4()),
        customer_id,
        tuple(lines),
        address_of(cmd.shippingAddress),
        ctx.now,
    )
    customer = repository.reserve_credit(tx, customer_id, order.total_cents)
    if customer is None:
        raise credit_refused("order")
    repository.insert_order(tx, order)
    changes = repository.record_change(
        tx, order.id, 1, EventType.ORDER_PLACED, ctx.actor_or_system(), ctx.now
    )
    products = ProductEvents(ctx)
    events = [
        OrderEvents(ctx).changed(EventType.ORDER_PLACED, order, changes, customer),
        *(products.stock_reserved(p, order.id) for p in reserved),
    ]
    response = accepted(
        f"/api/orders/{order.id}",
        order.id,
        1,
        total=order.state()["total"],
        status=order.status,
    )
    return Outcome(response, events)


def _locked_order(tx: Transaction, ctx: CommandContext, order_id: str) -> Order:
    order = repository.lock_order(tx, known_id(order_id, "Order"))
    if order is None:
        raise NotFound(f"Order {order_id.lower()} does not exist.")
    if ctx.owner is not None:
        customer = repository.get_customer(tx, order.customer_id)
        ctx.check_owner(
            customer.owner_subject if customer else None, f"Order {order.id}"
        )
    ctx.check_version(order.version)
    return order


def _saved(
    tx: Transaction,
    ctx: CommandContext,
    before: Order,
    after: Order,
    event_type: EventType,
    stock_events: tuple[Event, ...] = (),
    removed_product_id: str | None = None,
    **response_fields: object,
) -> Outcome:
    """Save the order's new state and answer with its event (and the stock events)."""
    repository.update_order(tx, after, before.version)
    customer = repository.get_customer(tx, after.customer_id)
    if customer is None:
        raise RuntimeError(f"order {after.id} has no customer {after.customer_id}")
    changes = repository.record_change(
        tx, after.id, after.version, event_type, ctx.actor_or_system(), ctx.now
    )
    event = OrderEvents(ctx).changed(
        event_type, after, changes, customer, removed_product_id
    )
    response = accepted(
        f"/api/orders/{after.id}", after.id, after.version, **response_fields
    )
    return Outcome(response, [event, *stock_events])


def _released(
    tx: Transaction, ctx: CommandContext, line: OrderLine, order_id: str
) -> Event:
    """Put a line's units back in stock; the product's event."""
    product = repository.adjust_stock(tx, line.product_id, line.quantity, ctx.now)
    if product is None:
        raise RuntimeError(f"product {line.product_id} refused units back")
    return ProductEvents(ctx).stock_released(product, order_id)


def add_item(
    tx: Transaction, ctx: CommandContext, cmd: models.AddItem, order_id: str
) -> Outcome:
    order = _locked_order(tx, ctx, order_id)
    product_id = cmd.productId.lower()
    order.check_add(product_id, cmd.quantity)
    product = repository.reserve_stock(tx, product_id, cmd.quantity, ctx.now)
    if product is None:
        current = repository.get_product(tx, product_id)
        if current is None:
            raise ValidationFailed(
                "Unknown product.",
                [FieldError("productId", f"no product {product_id}")],
            )
        raise current.shortage(cmd.quantity)
    after = order.add_line(product, cmd.quantity, ctx.now)
    line = after.line(product_id)
    if order.line_for(product_id) is None:
        repository.add_line(tx, order.id, line)
    else:
        repository.set_line_quantity(tx, order.id, product_id, line.quantity)
    added_cents = after.total_cents - order.total_cents
    if repository.reserve_credit(tx, order.customer_id, added_cents) is None:
        raise credit_refused("change")
    stock_event = ProductEvents(ctx).stock_reserved(product, order.id)
    return _saved(
        tx,
        ctx,
        order,
        after,
        EventType.ORDER_ITEM_ADDED,
        (stock_event,),
        total=after.state()["total"],
    )


def remove_item(
    tx: Transaction,
    ctx: CommandContext,
    cmd: models.NoBody,
    order_id: str,
    product_id: str,
) -> Outcome:
    order = _locked_order(tx, ctx, order_id)
    after, line = order.remove_line(product_id.lower(), ctx.now)
    repository.delete_line(tx, order.id, line.product_id)
    stock_event = _released(tx, ctx, line, order.id)
    repository.release_credit(tx, order.customer_id, line.line_total_cents)
    return _saved(
        tx,
        ctx,
        order,
        after,
        EventType.ORDER_ITEM_REMOVED,
        (stock_event,),
        removed_product_id=line.product_id,
        total=after.state()["total"],
    )


def change_shipping_address(
    tx: Transaction, ctx: CommandContext, cmd: models.Address, order_id: str
) -> Outcome:
    order = _locked_order(tx, ctx, order_id)
    after = order.change_address(address_of(cmd), ctx.now)
    return _saved(tx, ctx, order, after, EventType.ORDER_SHIPPING_ADDRESS_CHANGED)


def ship_order(
    tx: Transaction, ctx: CommandContext, cmd: models.ShipOrder, order_id: str
) -> Outcome:
    order = _locked_order(tx, ctx, order_id)
    after = order.ship(cmd.trackingNumber, ctx.now)
    return _saved(tx, ctx, order, after, EventType.ORDER_SHIPPED, status=after.status)


def deliver_order(
    tx: Transaction, ctx: CommandContext, cmd: models.NoBody, order_id: str
) -> Outcome:
    order = _locked_order(tx, ctx, order_id)
    after = order.deliver(ctx.now)
    repository.release_credit(tx, order.customer_id, order.total_cents)
    return _saved(tx, ctx, order, after, EventType.ORDER_DELIVERED, status=after.status)


def cancel_order(
    tx: Transaction, ctx: CommandContext, cmd: models.CancelOrder, order_id: str
) -> Outcome:
    order = _locked_order(tx, ctx, order_id)
    after = order.cancel(cmd.reason, ctx.now)
    # Product rows are locked in id order, as place_order does: no lock-order deadlocks.
    stock_events = tuple(
        _released(tx, ctx, line, order.id)
        for line in sorted(order.lines, key=lambda line: line.product_id)
    )
    repository.release_credit(tx, order.customer_id, order.total_cents)
    return _saved(
        tx,
        ctx,
        order,
        after,
        EventType.ORDER_CANCELLED,
        stock_events,
        status=after.status,
    )
