"""The write side's business rules: aggregates as plain data with their behaviour. No I/O.

Every method returns the aggregate's next state (they are immutable) or raises one of
the domain errors below, which the HTTP adapter answers as problem+json. Money is
integer cents here and in SQL (exact in every engine); `shared.money` converts.

Stock and credit are also guarded in SQL by conditional UPDATEs (`commands.repository`):
several orders may take from one product at once, so the database applies those two
rules atomically and the domain names their refusals.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from shared.errors import Conflict, FieldError, Forbidden, NotFound, ValidationFailed
from shared.events import (
    CustomerSnapshot,
    CustomerState,
    OrderLineState,
    OrderState,
    OrderStatus,
    ProductState,
    StatusStep,
)
from shared.formats import instant
from shared.money import from_cents

# The limits of an order, reused by the request models (commands.models).
MAX_ORDER_LINES = 50
MAX_LINE_QUANTITY = 1000
# Stock of a product, and one adjustment of it, stay within this.
MAX_STOCK = 1_000_000_000

# action -> (required status, new status)
TRANSITIONS = {
    "ship": (OrderStatus.PLACED, OrderStatus.SHIPPED),
    "deliver": (OrderStatus.SHIPPED, OrderStatus.DELIVERED),
    "cancel": (OrderStatus.PLACED, OrderStatus.CANCELLED),
}


# --- domain errors ---------------------------------------------------------------------


class StatusForbids(Conflict):
    """The order's status does not allow the action."""


class LineLimitExceeded(Conflict):
    """A line would hold more units, or an order more lines, than allowed."""


class LastLine(Conflict):
    """An order keeps at least one line; cancelling is how it ends."""


class NoSuchLine(NotFound):
    """The order has no line for the product."""


class InsufficientStock(Conflict):
    """A product has fewer units than asked for."""


class StockBelowZero(Conflict):
    """An adjustment would take a product's stock below 0."""


class CreditLimitExceeded(Conflict):
    """The customer's open orders would exceed their credit limit."""


class CreditIsStaffs(Forbidden):
    """A self-service customer changes their name and email; their credit is staff's call."""


def iso(value: datetime | None) -> str | None:
    return instant(value) if value else None


# --- customers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Customer:
    id: str
    name: str
    email: str
    credit_limit_cents: int
    version: int
    # The Entra ID subject of a self-service customer (Orders.Customer); None for staff-made.
    owner_subject: str | None = None

    @classmethod
    def register(
        cls,
        customer_id: str,
        name: str,
        email: str,
        credit_limit_cents: int,
        owner_subject: str | None = None,
    ) -> Customer:
        return cls(customer_id, name, email, credit_limit_cents, 1, owner_subject)

    def change(
        self,
        *,
        name: str | None = None,
        email: str | None = None,
        credit_limit_cents: int | None = None,
        self_service: bool = False,
    ) -> Customer:
        if self_service and credit_limit_cents is not None:
            raise CreditIsStaffs("A customer's credit limit is changed by staff only.")
        return replace(
            self,
            name=self.name if name is None else name,
            email=self.email if email is None else email,
            credit_limit_cents=self.credit_limit_cents
            if credit_limit_cents is None
            else credit_limit_cents,
            version=self.version + 1,
        )

    def snapshot(self) -> CustomerSnapshot:
        """What other documents carry of the customer (denormalized, with its version);
        the owner lets the read side confine a self-service caller to their own records."""
        return {
            "id": self.id,
            "name": self.name,
            "email": self.email,
            "version": self.version,
            "ownerSubject": self.owner_subject,
        }

    def state(self) -> CustomerState:
        return {**self.snapshot(), "creditLimit": from_cents(self.credit_limit_cents)}


def credit_refused(what: str) -> CreditLimitExceeded:
    """The refusal when the credit reservation (in SQL) finds the limit reached."""
    return CreditLimitExceeded(
        f"The {what} would take the customer over their credit limit."
    )


# --- products ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Product:
    id: str
    sku: str
    name: str
    price_cents: int
    stock: int
    version: int

    @classmethod
    def create(
        cls, product_id: str, sku: str, name: str, price_cents: int, stock: int
    ) -> Product:
        return cls(product_id, sku, name, price_cents, stock, 1)

    def change(
        self, *, name: str | None = None, price_cents: int | None = None
    ) -> Product:
        return replace(
            self,
            name=self.name if name is None else name,
            price_cents=self.price_cents if price_cents is None else price_cents,
            version=self.version + 1,
        )

    def adjust_stock(self, delta: int) -> Product:
        if self.stock + delta < 0:
            raise StockBelowZero(
                f"Stock cannot go below 0: {self.sku} has {self.stock}, delta is {delta}."
            )
        return replace(self, stock=self.stock + delta, version=self.version + 1)

    def shortage(self, quantity: int) -> InsufficientStock:
        return InsufficientStock(
            f"Insufficient stock: {self.sku} has {self.stock}, {quantity} requested."
        )

    def reserve(self, quantity: int) -> Product:
        if quantity > self.stock:
            raise self.shortage(quantity)
        return self.adjust_stock(-quantity)

    def release(self, quantity: int) -> Product:
        return self.adjust_stock(quantity)

    def state(self) -> ProductState:
        return {
            "id": self.id,
            "sku": self.sku,
            "name": self.name,
            "price": from_cents(self.price_cents),
            "stock": self.stock,
            "version": self.version,
        }


def stock_refused(shortages: list[tuple[Product, int]]) -> InsufficientStock:
    """One refusal naming every product of an order that is short (product, requested)."""
    return InsufficientStock(
        "Insufficient stock: "
        + "; ".join(f"{p.sku} has {p.stock}, {qty} requested" for p, qty in shortages)
    )


# --- orders ------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderLine:
    product_id: str
    sku: str
    name: str
    unit_price_cents: int
    quantity: int

    @classmethod
    def of(cls, product: Product, quantity: int) -> OrderLine:
        """A line at the product's current name and price."""
        return cls(product.id, product.sku, product.name, product.price_cents, quantity)

    @property
    def line_total_cents(self) -> int:
        return self.unit_price_cents * self.quantity

    def state(self) -> OrderLineState:
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


def merge_lines(items: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """One line per product (quantities of repeats added), sorted by product id.

    Sorting fixes the order in which stock rows are locked, so two orders for
    the same products can never deadlock each other.
    """
    merged: dict[str, int] = {}
    for product_id, quantity in items:
        merged[product_id.lower()] = merged.get(product_id.lower(), 0) + quantity
    errors = [
        FieldError(
            "items",
            f"product {pid} totals {qty} units; at most {MAX_LINE_QUANTITY} per line",
        )
        for pid, qty in merged.items()
        if qty > MAX_LINE_QUANTITY
    ]
    if errors:
        raise ValidationFailed("An order line is too large.", errors)
    return sorted(merged.items())


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

    @classmethod
    def place(
        cls,
        order_id: str,
        customer_id: str,
        lines: tuple[OrderLine, ...],
        address: Address,
        now: datetime,
    ) -> Order:
        return cls(
            order_id, customer_id, OrderStatus.PLACED.value, lines, address, now, now, 1
        )

    @property
    def total_cents(self) -> int:
        return sum(line.line_total_cents for line in self.lines)

    def line_for(self, product_id: str) -> OrderLine | None:
        return next((x for x in self.lines if x.product_id == product_id), None)

    def line(self, product_id: str) -> OrderLine:
        """The product's line; NoSuchLine (404) when the order has none."""
        line = self.line_for(product_id)
        if line is None:
            raise NoSuchLine(f"Order {self.id} has no line for product {product_id}.")
        return line

    def _next(self, now: datetime, **changes: Any) -> Order:
        return replace(self, **changes, updated_at=now, version=self.version + 1)

    def _require_placed(self, what: str) -> None:
        if self.status != OrderStatus.PLACED:
            raise StatusForbids(
                f"Cannot {what} an order that is {self.status}; only placed orders can change."
            )

    def check_add(self, product_id: str, quantity: int) -> None:
        """Refuse adding `quantity` of a product unless the order is placed and the limits
        of a line and of an order allow it."""
        self._require_placed("add items to")
        existing = self.line_for(product_id)
        held = existing.quantity if existing else 0
        if held + quantity > MAX_LINE_QUANTITY:
            # The body is valid (its schema allows it); the order's current line is what
            # refuses it: a business rule, so 409.
            raise LineLimitExceeded(
                f"The line for product {product_id} holds {held}; adding "
                f"{quantity} would make {held + quantity}, and a line holds at most "
                f"{MAX_LINE_QUANTITY}."
            )
        if existing is None and len(self.lines) >= MAX_ORDER_LINES:
            raise LineLimitExceeded(f"An order has at most {MAX_ORDER_LINES} lines.")

    def add_line(self, product: Product, quantity: int, now: datetime) -> Order:
        """Add to the product's line (which keeps the name and price it was first bought
        at) or add a line at the product's current price."""
        self.check_add(product.id, quantity)
        existing = self.line_for(product.id)
        if existing is None:
            return self._next(now, lines=(*self.lines, OrderLine.of(product, quantity)))
        grown = replace(existing, quantity=existing.quantity + quantity)
        lines = tuple(grown if x is existing else x for x in self.lines)
        return self._next(now, lines=lines)

    def remove_line(self, product_id: str, now: datetime) -> tuple[Order, OrderLine]:
        """The order without the product's line, and the line removed."""
        line = self.line(product_id)
        self._require_placed("remove items from")
        if len(self.lines) == 1:
            raise LastLine(
                "The last line of an order cannot be removed; cancel the order instead."
            )
        rest = tuple(x for x in self.lines if x is not line)
        return self._next(now, lines=rest), line

    def change_address(self, address: Address, now: datetime) -> Order:
        self._require_placed("change the address of")
        return self._next(now, shipping_address=address)

    def ship(self, tracking_number: str, now: datetime) -> Order:
        status = check_transition(self, "ship")
        return self._next(
            now, status=status, tracking_number=tracking_number, shipped_at=now
        )

    def deliver(self, now: datetime) -> Order:
        """Delivered: no longer open, so it stops counting against the credit limit."""
        return self._next(
            now, status=check_transition(self, "deliver"), delivered_at=now
        )

    def cancel(self, reason: str, now: datetime) -> Order:
        """Cancelled: its stock goes back and it stops counting against the credit limit."""
        status = check_transition(self, "cancel")
        return self._next(
            now, status=status, cancellation_reason=reason, cancelled_at=now
        )

    def history(self) -> list[StatusStep]:
        steps = [
            (OrderStatus.PLACED, self.placed_at),
            (OrderStatus.SHIPPED, self.shipped_at),
            (OrderStatus.DELIVERED, self.delivered_at),
            (OrderStatus.CANCELLED, self.cancelled_at),
        ]
        return [
            {"status": str(status), "at": iso(at)}
            for status, at in steps
            if at is not None
        ]

    def state(self) -> OrderState:
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


def check_transition(order: Order, action: str) -> str:
    """The new status for `action`, or StatusForbids when the order's status does not allow it."""
    required, new_status = TRANSITIONS[action]
    if order.status != required:
        raise StatusForbids(
            f"Cannot {action} an order that is {order.status}; it must be {required}."
        )
    return new_status.value
