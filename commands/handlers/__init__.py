"""One function per command, grouped by aggregate: load, let the domain decide, save.

Handlers run inside `execution.execute`'s transaction and return an `Outcome` (the
result and the events); they never touch HTTP or Azure types, so they are tested
directly against SQLite.
"""

from commands.handlers.customers import change_customer, register_customer
from commands.handlers.orders import (
    add_item,
    cancel_order,
    change_shipping_address,
    deliver_order,
    place_order,
    remove_item,
    ship_order,
)
from commands.handlers.products import adjust_stock, change_product, create_product

__all__ = [
    "add_item",
    "adjust_stock",
    "cancel_order",
    "change_customer",
    "change_product",
    "change_shipping_address",
    "create_product",
    "deliver_order",
    "place_order",
    "register_customer",
    "remove_item",
    "ship_order",
]
