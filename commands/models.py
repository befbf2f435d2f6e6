"""Command bodies and responses: validation rules and the OpenAPI schemas, in one place.

Strict models: wrong JSON types are refused (no "10" for 10), unknown fields are
refused (a client cannot send a price on an order line), money has at most two
decimals and is parsed straight from the JSON text into Decimal. Every rule is
also stated in the JSON schema, so a client that follows the OpenAPI document
sends only bodies that pass; the few a schema cannot express (lengths in UTF-16
units, merged order lines, existence of what a body names) are in descriptions.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
)

from commands.domain import MAX_LINE_QUANTITY, MAX_ORDER_LINES, MAX_STOCK
from shared import formats
from shared.events import OrderStatus
from shared.money import MAX_MONEY


def _no_strings(value: Any) -> Any:
    if isinstance(value, str | bool):
        # pydantic turns ValueError (not TypeError) into a field error; money is never a string.
        raise ValueError("must be a number")  # noqa: TRY004
    return value


def money(**constraints: Any) -> Any:
    schema: dict[str, Any] = {
        "type": "number",
        "multipleOf": 0.01,
        "maximum": float(MAX_MONEY),
    }
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


def _integral(value: Any) -> Any:
    # JSON Schema counts 1.0 as an integer, so a schema-driven client may send it. Only
    # values of at most 19 digits are converted: "1e999999999" must not build a huge int.
    if (
        isinstance(value, Decimal)
        and value.is_finite()
        and value == value.to_integral_value()
        and value.adjusted() < 19
    ):
        return int(value)
    return value


def integer(**constraints: Any) -> Any:
    """A JSON integer (1.0 counts, 1.5 and "1" do not) within `constraints`."""
    # Field first: the constraints then apply to the int and show in the JSON schema.
    return Annotated[int, Field(**constraints), BeforeValidator(_integral)]


def _fits(limit: int) -> Callable[[str], str]:
    def check(value: str) -> str:
        # NVARCHAR(n) counts UTF-16 code units: an emoji is one character but two units.
        if len(value.encode("utf-16-le")) // 2 > limit:
            raise ValueError(f"at most {limit} characters (UTF-16 code units)")
        return value

    return check


def _matches(pattern: str, message: str) -> Callable[[str], str]:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.search(value):
            raise ValueError(message)
        return value

    return check


def text(
    limit: int, pattern: str = formats.NOT_BLANK, message: str = "must not be blank"
) -> Any:
    """A string with a non-blank character that fits an NVARCHAR(limit) column.

    The pattern is checked here (its message says what is wanted, not the regex) and
    stated in the schema; formats.py writes it so that both read it the same way.
    """
    return Annotated[
        str,
        Field(
            min_length=1,
            max_length=limit,
            description=f"Surrounding whitespace is removed; then 1 to {limit} characters, "
            "counted in UTF-16 code units as the database counts them (a character "
            "outside the Basic Multilingual Plane, such as most emoji, counts as two).",
            json_schema_extra={"pattern": pattern},
        ),
        AfterValidator(_fits(limit)),
        AfterValidator(_matches(pattern, message)),
    ]


def _not_zero(value: int) -> int:
    if value == 0:
        raise ValueError("must not be 0")
    return value


if TYPE_CHECKING:
    # A type checker reads each constrained type as the Python type it validates to.
    Text: TypeAlias = str
    Email: TypeAlias = str
    Sku: TypeAlias = str
    Text100: TypeAlias = str
    Text20: TypeAlias = str
    Text500: TypeAlias = str
    PositiveMoney: TypeAlias = Decimal
    NonNegativeMoney: TypeAlias = Decimal
    StockLevel: TypeAlias = int
    StockDelta: TypeAlias = int
    Quantity: TypeAlias = int
else:
    Text = text(200)
    Email = text(
        254, formats.EMAIL, "must be an email address such as name@example.com"
    )
    Sku = text(
        64,
        formats.SKU,
        "letters, digits, '.', '_' and '-', starting with a letter or digit",
    )
    Text100 = text(100)
    Text20 = text(20)
    Text500 = text(500)
    PositiveMoney = money(gt=0)
    NonNegativeMoney = money(ge=0)
    StockLevel = integer(ge=0, le=MAX_STOCK)
    StockDelta = Annotated[
        integer(
            ge=-MAX_STOCK,
            le=MAX_STOCK,
            json_schema_extra={"not": {"const": 0}},
            description="Added to the stock; not 0. Stock never goes below 0 (409).",
        ),
        AfterValidator(_not_zero),
    ]
    Quantity = integer(ge=1, le=MAX_LINE_QUANTITY)


def _without_nulls(schema: dict[str, Any]) -> None:
    """JSON schema of a model whose optional fields are left out, never sent as null."""
    for name, prop in schema.get("properties", {}).items():
        branches = [b for b in prop.get("anyOf", []) if b != {"type": "null"}]
        if len(branches) == 1 and len(prop["anyOf"]) == 2:
            rest = {k: v for k, v in prop.items() if k not in ("anyOf", "default")}
            schema["properties"][name] = {**branches[0], **rest}


def _patch_schema(schema: dict[str, Any]) -> None:
    _without_nulls(schema)
    schema["minProperties"] = 1


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True)


class Patch(Body):
    """A PATCH body: the fields to change, at least one; null is no value for any of them."""

    model_config = ConfigDict(json_schema_extra=_patch_schema)

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("must not be null; leave the field out to keep it")
        return value


class RegisterCustomer(Body):
    name: Text
    email: Email
    creditLimit: NonNegativeMoney


class ChangeCustomer(Patch):
    name: Text | None = None
    email: Email | None = None
    creditLimit: NonNegativeMoney | None = None


class CreateProduct(Body):
    sku: Sku
    name: Text
    price: PositiveMoney
    stock: StockLevel


class ChangeProduct(Patch):
    name: Text | None = None
    price: PositiveMoney | None = None


class AdjustStock(Body):
    delta: StockDelta


class Address(Body):
    street: Text
    city: Text100
    state: Text100
    postalCode: Text20
    country: Text100


Uuid = Annotated[str, Field(pattern=formats.UUID), WithJsonSchema(formats.UUID_SCHEMA)]
ProductRef = Annotated[
    Uuid,
    Field(description="An existing product's id; an unknown one is refused with 400."),
]


class OrderLineRequest(Body):
    productId: ProductRef
    quantity: Quantity


class PlaceOrder(Body):
    customerId: Annotated[
        Uuid,
        Field(
            description="A registered customer's id; an unknown one is refused with 400."
        ),
    ]
    items: Annotated[
        list[OrderLineRequest],
        Field(
            min_length=1,
            max_length=MAX_ORDER_LINES,
            description=f"Lines naming the same product are merged into one, which holds "
            f"at most {MAX_LINE_QUANTITY} units (more: 400).",
        ),
    ]
    shippingAddress: Address


class AddItem(Body):
    productId: ProductRef
    quantity: Annotated[
        Quantity,
        Field(
            description=f"Added to the product's line if the order has one; a line holds "
            f"at most {MAX_LINE_QUANTITY} units (more: 409)."
        ),
    ]


class ShipOrder(Body):
    trackingNumber: Text100


class CancelOrder(Body):
    reason: Text500


class NoBody(Body):
    """Routes without a body accept none, or an empty object."""


class Accepted(BaseModel):
    """202 body of every command; some commands add fields."""

    id: Annotated[str, WithJsonSchema(formats.UUID_SCHEMA)]
    version: Annotated[int, Field(ge=1)]


class StockAccepted(Accepted):
    stock: Annotated[int, Field(ge=0)]


class OrderAccepted(Accepted):
    model_config = ConfigDict(json_schema_extra=_without_nulls)

    total: (
        Annotated[Decimal, WithJsonSchema({"type": "number", "minimum": 0})] | None
    ) = None
    status: (
        Literal[
            OrderStatus.PLACED,
            OrderStatus.SHIPPED,
            OrderStatus.DELIVERED,
            OrderStatus.CANCELLED,
        ]
        | None
    ) = None
