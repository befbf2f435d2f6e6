"""One function per command: load, decide, write rows, return the response and the events.

Handlers run inside `execution.execute`'s transaction and never touch HTTP or
Azure types, so they are tested directly against SQLite.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

from commands import models, repository
from commands.domain import (
    Address,
    Customer,
    Order,
    OrderLine,
    Product,
    check_transition,
    merge_lines,
    require_placed,
)
from commands.execution import CommandContext, Outcome, accepted
from shared.errors import Conflict, FieldError, Forbidden, NotFound, ValidationFailed
from shared.events import Event
from shared.money import to_cents
from shared.sql.db import Transaction


@contextmanager
def unique_or_conflict(tx: Transaction, message: str) -> Iterator[None]:
    """A unique constraint the statement hits (email, sku) is a business conflict: 409."""
    try:
        yield
    except Exception as exc:
        if tx.is_unique_violation(exc):
            raise Conflict(message) from None
        raise


def register_customer(
    tx: Transaction, ctx: CommandContext, cmd: models.RegisterCustomer
) -> Outcome:
    # A self-service caller registers their own record, bound to their subject, once.
    if ctx.owner is not None and repository.owned_customer_id(tx, ctx.owner):
        raise Conflict("You have registered a customer record already.")
    customer = Customer(
        str(uuid.uuid4()),
        cmd.name,
        cmd.email,
        to_cents(cmd.creditLimit),
        1,
        owner_subject=ctx.owner,
    )
    with unique_or_conflict(tx, f"A customer with email {cmd.email!r} already exists."):
        repository.insert_customer(tx, customer, ctx.now)
    event = ctx.event(
        "CustomerRegistered",
        "customer",
        customer.id,
        1,
        customer.id,
        {"customer": customer.state()},
    )
    return Outcome(accepted(f"/api/customers/{customer.id}", customer.id, 1), [event])


def create_product(
    tx: Transaction, ctx: CommandContext, cmd: models.CreateProduct
) -> Outcome:
    product = Product(
        str(uuid.uuid4()), cmd.sku, cmd.name, to_cents(cmd.price), cmd.stock, 1
    )
    with unique_or_conflict(tx, f"A product with sku {cmd.sku!r} already exists."):
        repository.insert_product(tx, product, ctx.now)
    event = ctx.event(
        "ProductCreated",
        "product",
        product.id,
        1,
        product.id,
        {"product": product.state()},
    )
    return Outcome(accepted(f"/api/products/{product.id}", product.id, 1), [event])


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
    order_id = str(uuid.uuid4())
    lines, reserved, missing, short = [], [], [], []
    for product_id, quantity in merge_lines(
        [(i.productId, i.quantity) for i in cmd.items]
    ):
        product = repository.reserve_stock(tx, product_id, quantity, ctx.now)
        if product is None:
            current = repository.get_product(tx, product_id)
            (missing if current is None else short).append(
                (product_id, quantity, current)
            )
            continue
        reserved.append(product)
        lines.append(
            OrderLine(
                product.id, product.sku, product.name, product.price_cents, quantity
            )
        )
    if missing:
        raise ValidationFailed(
            "The order refers to unknown products.",
            [FieldError("items", f"no product {pid}") for pid, _, _ in missing],
        )
    if short:
        raise Conflict(
            "Insufficient stock: "
            + "; ".join(
                f"{p.sku} has {p.stock}, {qty} requested" for _, qty, p in short
            )
        )
    address = models_address(cmd.shippingAddress)
    order = Order(
        order_id, customer_id, "placed", tuple(lines), address, ctx.now, ctx.now, 1
    )
    customer = repository.reserve_credit(tx, customer_id, order.total_cents)
    if customer is None:
        raise Conflict("The order would take the customer over their credit limit.")
    repository.insert_order(tx, order)
    changes = repository.record_change(
        tx, order.id, 1, "OrderPlaced", ctx.actor_or_system(), ctx.now
    )
    events = [
        ctx.event(
            "OrderPlaced",
            "order",
            order.id,
            1,
            customer_id,
            {
                "order": {**order.state(), "changes": changes},
                "customer": customer.snapshot(),
            },
        ),
        *(
            ctx.event(
                "ProductStockReserved",
                "product",
                p.id,
                p.version,
                p.id,
                {"product": p.state(), "orderId": order.id},
            )
            for p in reserved
        ),
    ]
    response = accepted(
        f"/api/orders/{order.id}",
        order.id,
        1,
        total=order.state()["total"],
        status="placed",
    )
    return Outcome(response, events)


def models_address(address: models.Address) -> Address:
    return Address(
        address.street, address.city, address.state, address.postalCode, address.country
    )


# --- commands on existing aggregates -----------------------------------------------------

UUID_PATTERN = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
)


def _id(value: str, what: str) -> str:
    """A route id; anything that is not a UUID cannot name an existing resource (404)."""
    value = value.lower()
    if not UUID_PATTERN.match(value):
        raise NotFound(f"{what} {value} does not exist.")
    return value


def _require_changes(cmd: models.Patch) -> dict:
    # A null never gets this far: models.Patch refuses it per field.
    changes = cmd.model_dump(exclude_unset=True)
    if not changes:
        raise ValidationFailed("Send at least one field to change.")
    return changes


def change_customer(
    tx: Transaction, ctx: CommandContext, cmd: models.ChangeCustomer, customer_id: str
) -> Outcome:
    customer_id = _id(customer_id, "Customer")
    current = repository.lock_customer(tx, customer_id)
    if current is None:
        raise NotFound(f"Customer {customer_id} does not exist.")
    ctx.check_owner(current.owner_subject, f"Customer {customer_id}")
    ctx.check_version(current.version)
    changes = _require_changes(cmd)
    if ctx.owner is not None and "creditLimit" in changes:
        # Self-service customers change their name and email; their credit is staff's call.
        raise Forbidden("A customer's credit limit is changed by staff only.")
    customer = replace(
        current,
        name=changes.get("name", current.name),
        email=changes.get("email", current.email),
        credit_limit_cents=to_cents(changes["creditLimit"])
        if "creditLimit" in changes
        else current.credit_limit_cents,
        version=current.version + 1,
    )
    with unique_or_conflict(
        tx, f"A customer with email {customer.email!r} already exists."
    ):
        repository.update_customer(tx, customer, ctx.now)
    event = ctx.event(
        "CustomerChanged",
        "customer",
        customer.id,
        customer.version,
        customer.id,
        {"customer": customer.state(), "changed": sorted(changes)},
    )
    return Outcome(
        accepted(f"/api/customers/{customer.id}", customer.id, customer.version),
        [event],
    )


def _locked_product(tx: Transaction, ctx: CommandContext, product_id: str) -> Product:
    product = repository.lock_product(tx, product_id)
    if product is None:
        raise NotFound(f"Product {product_id} does not exist.")
    ctx.check_version(product.version)
    return product


def change_product(
    tx: Transaction, ctx: CommandContext, cmd: models.ChangeProduct, product_id: str
) -> Outcome:
    current = _locked_product(tx, ctx, _id(product_id, "Product"))
    changes = _require_changes(cmd)
    product = replace(
        current,
        name=changes.get("name", current.name),
        price_cents=to_cents(changes["price"])
        if "price" in changes
        else current.price_cents,
        version=current.version + 1,
    )
    repository.update_product(tx, product, ctx.now)
    event = ctx.event(
        "ProductChanged",
        "product",
        product.id,
        product.version,
        product.id,
        {"product": product.state(), "changed": sorted(changes)},
    )
    return Outcome(
        accepted(f"/api/products/{product.id}", product.id, product.version), [event]
    )


def adjust_stock(
    tx: Transaction, ctx: CommandContext, cmd: models.AdjustStock, product_id: str
) -> Outcome:
    current = _locked_product(tx, ctx, _id(product_id, "Product"))
    product = repository.adjust_stock(tx, current.id, cmd.delta, ctx.now)
    if product is None:
        raise Conflict(
            f"Stock cannot go below 0: {current.sku} has {current.stock}, delta is {cmd.delta}."
        )
    event = ctx.event(
        "ProductStockAdjusted",
        "product",
        product.id,
        product.version,
        product.id,
        {"product": product.state(), "delta": cmd.delta},
    )
    return Outcome(
        accepted(
            f"/api/products/{product.id}",
            product.id,
            product.version,
            stock=product.stock,
        ),
        [event],
    )


def _locked_order(tx: Transaction, ctx: CommandContext, order_id: str) -> Order:
    order = repository.lock_order(tx, _id(order_id, "Order"))
    if order is None:
        raise NotFound(f"Order {order_id.lower()} does not exist.")
    if ctx.owner is not None:
        customer = repository.get_customer(tx, order.customer_id)
        ctx.check_owner(
            customer.owner_subject if customer else None, f"Order {order.id}"
        )
    ctx.check_version(order.version)
    return order


def _order_changed(
    tx: Transaction,
    ctx: CommandContext,
    before: Order,
    after: Order,
    event_type: str,
    extra_events: tuple = (),
    removed_product_id: str | None = None,
    **response_fields: object,
) -> Outcome:
    repository.update_order(tx, after, before.version)
    customer = repository.get_customer(tx, after.customer_id)
    changes = repository.record_change(
        tx, after.id, after.version, event_type, ctx.actor_or_system(), ctx.now
    )
    event = ctx.event(
        event_type,
        "order",
        after.id,
        after.version,
        after.customer_id,
        {
            "order": {**after.state(), "changes": changes},
            "customer": customer.snapshot(),
        }
        # Order events carry state; a removed line is gone from it, so name it for projections.
        | ({"removedProductId": removed_product_id} if removed_product_id else {}),
    )
    response = accepted(
        f"/api/orders/{after.id}", after.id, after.version, **response_fields
    )
    return Outcome(response, [event, *extra_events])


def _stock_event(
    ctx: CommandContext, event_type: str, product: Product, order_id: str
) -> Event:
    return ctx.event(
        event_type,
        "product",
        product.id,
        product.version,
        product.id,
        {"product": product.state(), "orderId": order_id},
    )


def add_item(
    tx: Transaction, ctx: CommandContext, cmd: models.AddItem, order_id: str
) -> Outcome:
    order = _locked_order(tx, ctx, order_id)
    require_placed(order, "add items to")
    product_id = cmd.productId.lower()
    existing = next(
        (line for line in order.lines if line.product_id == product_id), None
    )
    quantity = cmd.quantity + (existing.quantity if existing else 0)
    if quantity > models.MAX_LINE_QUANTITY:
        # The body is valid (its schema allows it); the order's current line is what
        # refuses it, like the 50-line limit below: a business rule, so 409.
        raise Conflict(
            f"The line for product {product_id} holds {existing.quantity}; adding "
            f"{cmd.quantity} would make {quantity}, and a line holds at most "
            f"{models.MAX_LINE_QUANTITY}."
        )
    if existing is None and len(order.lines) >= models.MAX_ORDER_LINES:
        raise Conflict(f"An order has at most {models.MAX_ORDER_LINES} lines.")
    product = repository.reserve_stock(tx, product_id, cmd.quantity, ctx.now)
    if product is None:
        current = repository.get_product(tx, product_id)
        if current is None:
            raise ValidationFailed(
                "Unknown product.",
                [FieldError("productId", f"no product {product_id}")],
            )
        raise Conflict(
            f"Insufficient stock: {current.sku} has {current.stock}, {cmd.quantity} requested."
        )
    if existing:
        # The line keeps the name and price it was first bought at.
        line = replace(existing, quantity=quantity)
        lines = tuple(line if x.product_id == product_id else x for x in order.lines)
        repository.set_line_quantity(tx, order.id, product_id, quantity)
    else:
        line = OrderLine(
            product.id, product.sku, product.name, product.price_cents, cmd.quantity
        )
        lines = (*order.lines, line)
        repository.add_line(tx, order.id, line)
    after = replace(order, lines=lines, updated_at=ctx.now, version=order.version + 1)
    added_cents = after.total_cents - order.total_cents
    if repository.reserve_credit(tx, order.customer_id, added_cents) is None:
        raise Conflict("The change would take the customer over their credit limit.")
    return _order_changed(
        tx,
        ctx,
        order,
        after,
        "OrderItemAdded",
        (_stock_event(ctx, "ProductStockReserved", product, order.id),),
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
    product_id = product_id.lower()
    line = next((x for x in order.lines if x.product_id == product_id), None)
    if line is None:
        raise NotFound(f"Order {order.id} has no line for product {product_id}.")
    require_placed(order, "remove items from")
    if len(order.lines) == 1:
        raise Conflict(
            "The last line of an order cannot be removed; cancel the order instead."
        )
    repository.delete_line(tx, order.id, product_id)
    product = repository.adjust_stock(tx, product_id, line.quantity, ctx.now)
    repository.release_credit(tx, order.customer_id, line.line_total_cents)
    after = replace(
        order,
        lines=tuple(x for x in order.lines if x.product_id != product_id),
        updated_at=ctx.now,
        version=order.version + 1,
    )
    return _order_changed(
        tx,
        ctx,
        order,
        after,
        "OrderItemRemoved",
        (_stock_event(ctx, "ProductStockReleased", product, order.id),),
        removed_product_id=product_id,
        total=after.state()["total"],
    )


def change_shipping_address(
    tx: Transaction, ctx: CommandContext, cmd: models.Address, order_id: str
) -> Outcome:
    order = _locked_order(tx, ctx, order_id)
    require_placed(order, "change the address of")
    after = replace(
        order,
        shipping_address=models_address(cmd),
        updated_at=ctx.now,
        version=order.version + 1,
    )
    return _order_changed(tx, ctx, order, after, "OrderShippingAddressChanged")


def ship_order(
    tx: Transaction, ctx: CommandContext, cmd: models.ShipOrder, order_id: str
) -> Outcome:
    order = _locked_order(tx, ctx, order_id)
    status = check_transition(order, "ship")
    after = replace(
        order,
        status=status,
        tracking_number=cmd.trackingNumber,
        shipped_at=ctx.now,
        updated_at=ctx.now,
        version=order.version + 1,
    )
    return _order_changed(tx, ctx, order, after, "OrderShipped", status=status)


def deliver_order(
    tx: Transaction, ctx: CommandContext, cmd: models.NoBody, order_id: str
) -> Outcome:
    order = _locked_order(tx, ctx, order_id)
    status = check_transition(order, "deliver")
    # A delivered order is no longer open: it stops counting against the credit limit.
    repository.release_credit(tx, order.customer_id, order.total_cents)
    after = replace(
        order,
        status=status,
        delivered_at=ctx.now,
        updated_at=ctx.now,
        version=order.version + 1,
    )
    return _order_changed(tx, ctx, order, after, "OrderDelivered", status=status)


def cancel_order(
    tx: Transaction, ctx: CommandContext, cmd: models.CancelOrder, order_id: str
) -> Outcome:
    order = _locked_order(tx, ctx, order_id)
    status = check_transition(order, "cancel")
    # Product rows are locked in id order, as place_order does: no lock-order deadlocks.
    released = [
        repository.adjust_stock(tx, line.product_id, line.quantity, ctx.now)
        for line in sorted(order.lines, key=lambda line: line.product_id)
    ]
    repository.release_credit(tx, order.customer_id, order.total_cents)
    after = replace(
        order,
        status=status,
        cancellation_reason=cmd.reason,
        cancelled_at=ctx.now,
        updated_at=ctx.now,
        version=order.version + 1,
    )
    stock_events = tuple(
        _stock_event(ctx, "ProductStockReleased", p, order.id) for p in released
    )
    return _order_changed(
        tx, ctx, order, after, "OrderCancelled", stock_events, status=status
    )
