"""One function per command: load, decide, write rows, return the response and the events.

Handlers run inside `execution.execute`'s transaction and never touch HTTP or
Azure types, so they are tested directly against SQLite.
"""

from __future__ import annotations

import uuid

from commands import models, repository
from commands.domain import (
    Address,
    Customer,
    Order,
    OrderLine,
    Product,
    merge_lines,
    to_cents,
)
from commands.execution import CommandContext, Outcome, accepted
from shared.errors import Conflict, FieldError, ValidationFailed
from shared.sql.db import Transaction


def register_customer(tx: Transaction, ctx: CommandContext, cmd: models.RegisterCustomer) -> Outcome:
    customer = Customer(str(uuid.uuid4()), cmd.name, cmd.email, to_cents(cmd.creditLimit), 1)
    try:
        repository.insert_customer(tx, customer, ctx.now)
    except Exception as exc:
        if tx.is_unique_violation(exc):
            raise Conflict(f"A customer with email {cmd.email!r} already exists.") from None
        raise
    event = ctx.event("CustomerRegistered", "customer", customer.id, 1, customer.id, {"customer": customer.state()})
    return Outcome(accepted(f"/api/customers/{customer.id}", customer.id, 1), [event])


def create_product(tx: Transaction, ctx: CommandContext, cmd: models.CreateProduct) -> Outcome:
    product = Product(str(uuid.uuid4()), cmd.sku, cmd.name, to_cents(cmd.price), cmd.stock, 1)
    try:
        repository.insert_product(tx, product, ctx.now)
    except Exception as exc:
        if tx.is_unique_violation(exc):
            raise Conflict(f"A product with sku {cmd.sku!r} already exists.") from None
        raise
    event = ctx.event("ProductCreated", "product", product.id, 1, product.id, {"product": product.state()})
    return Outcome(accepted(f"/api/products/{product.id}", product.id, 1), [event])


def place_order(tx: Transaction, ctx: CommandContext, cmd: models.PlaceOrder) -> Outcome:
    customer_id = cmd.customerId.lower()
    if repository.get_customer(tx, customer_id) is None:
        raise ValidationFailed("The order refers to an unknown customer.",
                               [FieldError("customerId", f"no customer {customer_id}")])
    order_id = str(uuid.uuid4())
    lines, reserved, missing, short = [], [], [], []
    for product_id, quantity in merge_lines([(i.productId, i.quantity) for i in cmd.items]):
        product = repository.reserve_stock(tx, product_id, quantity, ctx.now)
        if product is None:
            current = repository.get_product(tx, product_id)
            (missing if current is None else short).append((product_id, quantity, current))
            continue
        reserved.append(product)
        lines.append(OrderLine(product.id, product.sku, product.name, product.price_cents, quantity))
    if missing:
        raise ValidationFailed("The order refers to unknown products.",
                               [FieldError("items", f"no product {pid}") for pid, _, _ in missing])
    if short:
        raise Conflict("Insufficient stock: " + "; ".join(
            f"{p.sku} has {p.stock}, {qty} requested" for _, qty, p in short))
    address = models_address(cmd.shippingAddress)
    order = Order(order_id, customer_id, "placed", tuple(lines), address, ctx.now, ctx.now, 1)
    customer = repository.reserve_credit(tx, customer_id, order.total_cents)
    if customer is None:
        raise Conflict("The order would take the customer over their credit limit.")
    repository.insert_order(tx, order)
    events = [
        ctx.event("OrderPlaced", "order", order.id, 1, customer_id,
                  {"order": order.state(), "customer": customer.snapshot()}),
        *(
            ctx.event("ProductStockReserved", "product", p.id, p.version, p.id,
                      {"product": p.state(), "orderId": order.id})
            for p in reserved
        ),
    ]
    response = accepted(f"/api/orders/{order.id}", order.id, 1, total=order.state()["total"], status="placed")
    return Outcome(response, events)


def models_address(address: models.Address) -> Address:
    return Address(address.street, address.city, address.state, address.postalCode, address.country)

