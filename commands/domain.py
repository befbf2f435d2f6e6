"""Write-side domain: aggregates, rules and event payloads. Pure code, no I/O.

Money is Decimal here and integer cents in SQL (exact arithmetic in every
engine); `to_cents`/`from_cents` are the only conversions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.errors import Conflict, FieldError, ValidationFailed
from shared.money import from_cents

OPEN_STATUSES = ("placed", "shipped")

# action -> (required status, new status)
TRANSITIONS = {
    "ship": ("placed", "shipped"),
    "deliver": ("shipped", "delivered"),
    "cancel": ("placed", "cancelled"),
}


def iso(value: datetime | None) -> str | None:
    # Fixed width (a whole second keeps its .000000), so the text sorts as the time does.
    return (
        value.isoformat(timespec="microseconds").replace("+00:00", "Z")
        if value
        else None
    )


@dataclass(frozen=True)
class Customer:
    id: str
    name: str
    email: str
    credit_limit_cents: int
    version: int
    # The Entra ID subject of a self-service customer (Orders.Customer); None for staff-made.
    owner_subject: str | None = None

    def snapshot(self) -> dict[str, Any]:
        """What other documents carry of the customer (denormalized, with its version);
        the owner lets the read side confine a self-service caller to their own records."""
        return {
            "id": self.id,
            "name": self.name,
            "email": self.email,
            "version": self.version,
            "ownerSubject": self.owner_subject,
        }

    def state(self) -> dict[str, Any]:
        return {**self.snapshot(), "creditLimit": from_cents(self.credit_limit_cents)}


@dataclass(frozen=True)
class Product:
    id: str
    sku: str
    name: str
    price_cents: int
    stock: int
    version: int

    def state(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "sku": self.sku,
            "name": self.name,
            "price": from_cents(self.price_cents),
            "stock": self.stock,
            "version": self.version,
        }


@dataclass(frozen=True)
class OrderLine:
    product_id: str
    sku: str
    name: str
    unit_price_cents: int
    quantity: int

    @property
    def line_total_cents(self) -> int:
        return self.unit_price_cents * self.quantity

    def state(self) -> dict[str, Any]:
        return {
            "productId": self.product_id,
            "sku": self.sku,
            "name": self.name,
            "unitPrice": from_cents(self.unit_price_cents),
            "quantity": self.quantity,
            "lineTotal": from_cents(self.line_total_cents),
        }


@dataclass(frozen=True)
class Address:
    street: str
    city: str
    state: str
    postal_code: str
    country: str

    def as_json(self) -> dict[str, str]:
        return {
            "street": self.street,
            "city": self.city,
            "state": self.state,
            "postalCode": self.postal_code,
            "country": self.country,
        }


@dataclass(frozen=True)
class Order:
    id: str
    customer_id: str
    status: str
    lines: tuple[OrderLine, ...]
    shipping_address: Address
    placed_at: datetime
    updated_at: datetime
    version: int
    tracking_number: str | None = None
    cancellation_reason: str | None = None
    shipped_at: datetime | None = None
    delivered_at: datetime | None = None
    cancelled_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def total_cents(self) -> int:
        return sum(line.line_total_cents for line in self.lines)

    def history(self) -> list[dict[str, str]]:
        steps = [
            ("placed", self.placed_at),
            ("shipped", self.shipped_at),
            ("delivered", self.delivered_at),
            ("cancelled", self.cancelled_at),
        ]
        return [
            {"status": status, "at": iso(at)} for status, at in steps if at is not None
        ]

    def state(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "customerId": self.customer_id,
            "status": self.status,
            "items": [line.state() for line in self.lines],
            "itemCount": sum(line.quantity for line in self.lines),
            "total": from_cents(self.total_cents),
            "shippingAddress": self.shipping_address.as_json(),
            "trackingNumber": self.tracking_number,
            "cancellationReason": self.cancellation_reason,
            "placedAt": iso(self.placed_at),
            "updatedAt": iso(self.updated_at),
            "version": self.version,
            "history": self.history(),
        }


def merge_lines(items: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """One line per product (quantities of repeats added), sorted by product id.

    Sorting fixes the order in which stock rows are locked, so two orders for
    the same products can never deadlock each other.
    """
    merged: dict[str, int] = {}
    for product_id, quantity in items:
        merged[product_id.lower()] = merged.get(product_id.lower(), 0) + quantity
    errors = [
        FieldError("items", f"product {pid} totals {qty} units; at most 1000 per line")
        for pid, qty in merged.items()
        if qty > 1000
    ]
    if errors:
        raise ValidationFailed("An order line is too large.", errors)
    return sorted(merged.items())


def check_transition(order: Order, action: str) -> str:
    """The new status for `action`, or Conflict when the order's status does not allow it."""
    required, new_status = TRANSITIONS[action]
    if order.status != required:
        raise Conflict(
            f"Cannot {action} an order that is {order.status}; it must be {required}."
        )
    return new_status


def require_placed(order: Order, what: str) -> None:
    if order.status != "placed":
        raise Conflict(
            f"Cannot {what} an order that is {order.status}; only placed orders can change."
        )
