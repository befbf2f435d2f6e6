"""Command bodies and responses: validation rules and the OpenAPI schemas, in one place.

Strict models: wrong JSON types are refused (no "10" for 10), unknown fields are
refused (a client cannot send a price on an order line), money has at most two
decimals and is parsed straight from the JSON text into Decimal.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
)


def _no_strings(value: Any) -> Any:
    if isinstance(value, str | bool):
        # pydantic turns ValueError (not TypeError) into a field error; money is never a string.
        raise ValueError("must be a number")  # noqa: TRY004
    return value


def money(**constraints: Any) -> Any:
    schema = {"type": "number", "multipleOf": 0.01}
    if "gt" in constraints:
        # With two decimals, > 0 is >= 0.01; API Management mis-imports a numeric
        # exclusiveMinimum (OpenAPI 3.1), so the schema says it that way.
        schema["minimum"] = constraints["gt"] + 0.01
    if "ge" in constraints:
        schema["minimum"] = constraints["ge"]
    return Annotated[
        Decimal,
        BeforeValidator(_no_strings),
        # Lax on purpose: the JSON number arrives as int or Decimal; strings were refused above.
        Field(
            strict=False,
            decimal_places=2,
            max_digits=15,
            allow_inf_nan=False,
            **constraints,
        ),
        WithJsonSchema(schema),
    ]


def _fits(limit: int):
    def check(value: str) -> str:
        # NVARCHAR(n) counts UTF-16 code units: an emoji is one character but two units.
        if len(value.encode("utf-16-le")) // 2 > limit:
            raise ValueError(f"at most {limit} characters (UTF-16 code units)")
        return value

    return check


def text(limit: int, pattern: str | None = None) -> Any:
    """A non-empty string that fits an NVARCHAR(limit) column."""
    return Annotated[
        str,
        Field(min_length=1, max_length=limit, pattern=pattern),
        AfterValidator(_fits(limit)),
    ]


EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
Text = text(200)
Email = text(254, EMAIL)
PositiveMoney = money(gt=0)
NonNegativeMoney = money(ge=0)


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True)


class RegisterCustomer(Body):
    name: Text
    email: Email
    creditLimit: NonNegativeMoney


class ChangeCustomer(Body):
    name: Text | None = None
    email: Email | None = None
    creditLimit: NonNegativeMoney | None = None


class CreateProduct(Body):
    sku: text(64, r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    name: Text
    price: PositiveMoney
    stock: Annotated[int, Field(ge=0, le=1_000_000_000)]


class ChangeProduct(Body):
    name: Text | None = None
    price: PositiveMoney | None = None


class AdjustStock(Body):
    delta: Annotated[int, Field(ge=-1_000_000_000, le=1_000_000_000)]


class Address(Body):
    street: Text
    city: text(100)
    state: text(100)
    postalCode: text(20)
    country: text(100)


Uuid = Annotated[
    str,
    Field(
        pattern=r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    ),
]
Quantity = Annotated[int, Field(ge=1, le=1000)]


class OrderLineRequest(Body):
    productId: Uuid
    quantity: Quantity


class PlaceOrder(Body):
    customerId: Uuid
    items: Annotated[list[OrderLineRequest], Field(min_length=1, max_length=50)]
    shippingAddress: Address


class AddItem(Body):
    productId: Uuid
    quantity: Quantity


class ShipOrder(Body):
    trackingNumber: text(100)


class CancelOrder(Body):
    reason: text(500)


class NoBody(Body):
    """Routes without a body accept none, or an empty object."""


class Accepted(BaseModel):
    """202 body of every command; some commands add fields."""

    id: str
    version: int


class StockAccepted(Accepted):
    stock: int


class OrderAccepted(Accepted):
    total: Annotated[Decimal, WithJsonSchema({"type": "number"})] | None = None
    status: str | None = None
