"""Product commands: create, change, adjust stock."""

from __future__ import annotations

import uuid

from commands import models, repository
from commands.domain import Product
from commands.events import ProductEvents
from commands.execution import CommandContext, Outcome, accepted
from commands.handlers.steps import require_changes, unique_or_conflict
from shared.errors import NotFound, known_id
from shared.money import to_cents
from shared.sql.db import Transaction


def create_product(
    tx: Transaction, ctx: CommandContext, cmd: models.CreateProduct
) -> Outcome:
    product = Product.create(
        str(uuid.uuid4()), cmd.sku, cmd.name, to_cents(cmd.price), cmd.stock
    )
    with unique_or_conflict(f"A product with sku {cmd.sku!r} already exists."):
        repository.insert_product(tx, product, ctx.now)
    return Outcome(
        accepted(f"/api/products/{product.id}", product.id, 1),
        [ProductEvents(ctx).created(product)],
    )


def _locked_product(tx: Transaction, ctx: CommandContext, product_id: str) -> Product:
    product = repository.lock_product(tx, known_id(product_id, "Product"))
    if product is None:
        raise NotFound(f"Product {product_id.lower()} does not exist.")
    ctx.check_version(product.version)
    return product


def change_product(
    tx: Transaction, ctx: CommandContext, cmd: models.ChangeProduct, product_id: str
) -> Outcome:
    current = _locked_product(tx, ctx, product_id)
    changes = require_changes(cmd)
    product = current.change(
        name=cmd.name,
        price_cents=None if cmd.price is None else to_cents(cmd.price),
    )
    repository.update_product(tx, product, ctx.now)
    return Outcome(
        accepted(f"/api/products/{product.id}", product.id, product.version),
        [ProductEvents(ctx).changed(product, list(changes))],
    )


def adjust_stock(
    tx: Transaction, ctx: CommandContext, cmd: models.AdjustStock, product_id: str
) -> Outcome:
    current = _locked_product(tx, ctx, product_id)
    current.adjust_stock(cmd.delta)  # the rule, on the row this transaction holds
    product = repository.adjust_stock(tx, current.id, cmd.delta, ctx.now)
    if product is None:
        raise RuntimeError(f"product {current.id} changed under a held lock")
    return Outcome(
        accepted(
            f"/api/products/{product.id}",
            product.id,
            product.version,
            stock=product.stock,
        ),
        [ProductEvents(ctx).stock_adjusted(product, cmd.delta)],
    )
