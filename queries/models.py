"""Query parameters and response shapes: validation and OpenAPI schemas.

Each parameter's schema states the rule its validation applies, so a client that
follows the OpenAPI document sends only queries that pass. Rules spanning two
parameters (minTotal <= maxTotal, placedFrom <= placedTo, the stats range) cannot be
said in JSON Schema: their descriptions say them.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    create_model,
    field_validator,
    model_validator,
)

from shared import formats
from shared.formats import MAX_VERSION
from shared.money import MAX_MONEY

OrderStatus = Literal["placed", "shipped", "delivered", "cancelled"]
ORDER_STATUSES: tuple[OrderStatus, ...] = get_args(OrderStatus)
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20
MAX_TOKEN_CHARS = 8192
MAX_STATS_DAYS = 366

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class Params(BaseModel):
    # Query strings are text: allow "5" for 5, but nothing unknown.
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _without_function_key(cls, data: Any) -> Any:
        # The Functions host passes its own `code` (function key) through to the worker.
        if isinstance(data, dict) and "code" in data:
            return {k: v for k, v in data.items() if k != "code"}
        return data


def _day(value: Any) -> Any:
    if isinstance(value, str):
        if not _DAY.match(value):
            raise ValueError("must be a date as YYYY-MM-DD")
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ValueError("is not a valid calendar date") from None
    return value


def _instant(value: Any, *, end_of_day: bool) -> Any:
    """A date or ISO 8601 date-time as a UTC datetime; a bare date means its first
    (or, for an upper bound, its last) microsecond."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if _DAY.match(text):
        day = _day(text)
        moment = datetime.combine(day, time.max if end_of_day else time.min)
        return moment.replace(tzinfo=UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            "must be a date (YYYY-MM-DD) or an ISO 8601 date-time"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # no offset given: the API speaks UTC
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+14:00 has no UTC equivalent
        raise ValueError("is out of the representable range") from None


_DAY_SCHEMA = {"type": "string", "format": "date", "pattern": formats.DAY}
# RFC 3339 as Python reads it: upper-case T and Z, seconds 00-59, at most 6 decimals.
_DATE_TIME = (
    formats.DAY[:-1] + "T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]([.][0-9]{1,6})?"
    "(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
_INSTANT_SCHEMA = WithJsonSchema(
    {
        "anyOf": [
            _DAY_SCHEMA,
            {
                "type": "string",
                "format": "date-time",
                "pattern": _DATE_TIME,
                # The instant must exist in UTC between years 1 and 9999.
                "not": {
                    "anyOf": [
                        {"pattern": "^0001-01-01T.*[+]"},
                        {"pattern": "^9999-12-31T.*-[0-9]{2}:[0-9]{2}$"},
                    ]
                },
            },
        ],
        "description": "A date (YYYY-MM-DD: the whole UTC day) or an RFC 3339 date-time "
        "(its UTC instant must fall in the years 0001-9999).",
    }
)
Day = Annotated[date, BeforeValidator(_day), WithJsonSchema(_DAY_SCHEMA)]
InstantFrom = Annotated[
    datetime,
    BeforeValidator(lambda v: _instant(v, end_of_day=False)),
    _INSTANT_SCHEMA,
]
InstantTo = Annotated[
    datetime,
    BeforeValidator(lambda v: _instant(v, end_of_day=True)),
    _INSTANT_SCHEMA,
]
Money = Annotated[
    Decimal,
    Field(ge=0, max_digits=15, decimal_places=2, allow_inf_nan=False),
    WithJsonSchema(
        {
            "type": "number",
            "minimum": 0,
            "maximum": float(MAX_MONEY),
            "multipleOf": 0.01,
        }
    ),
]
# Control characters (Unicode category Cc): product names are joined by newlines in
# the search field, so a control character could match across two names.
_CONTROL = "\\x00-\\x1f\\x7f-\\x9f"
_CONTROL_RE = re.compile(f"[{_CONTROL}]")
SEARCH_TEXT = f"^[^{_CONTROL}]*[^{_CONTROL}{formats.WHITESPACE}][^{_CONTROL}]*$"


class ReadYourWrites(Params):
    minVersion: Annotated[int, Field(ge=1, le=MAX_VERSION)] | None = Field(
        None, description="Wait (up to waitMs) until the read model has this version."
    )
    waitMs: Annotated[int, Field(ge=0, le=5000)] = 0


class PageParams(Params):
    pageSize: Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE
    continuationToken: (
        Annotated[
            str,
            Field(
                min_length=1,
                max_length=MAX_TOKEN_CHARS,
                json_schema_extra={"pattern": "^[A-Za-z0-9_-]+$"},
            ),
        ]
        | None
    ) = Field(
        None,
        description="The continuationToken of the previous page, unchanged, with the "
        "same filters; any other value is refused with 400.",
    )


class CustomerOrdersParams(PageParams):
    status: OrderStatus | None = None


class OrderSearchParams(CustomerOrdersParams):
    customerId: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    minTotal: Money | None = None
    maxTotal: Money | None = Field(
        None, description="Not below minTotal when both are given."
    )
    placedFrom: InstantFrom | None = None
    placedTo: InstantTo | None = Field(
        None, description="Not before placedFrom when both are given."
    )
    q: (
        Annotated[
            str,
            Field(
                min_length=1, max_length=100, json_schema_extra={"pattern": SEARCH_TEXT}
            ),
        ]
        | None
    ) = Field(
        None,
        description="Matches the customer's name or a product's name, ignoring case; "
        "not blank, no control characters.",
    )

    @field_validator("customerId")
    @classmethod
    def _lower_id(cls, value: str | None) -> str | None:
        return value.lower() if value is not None else None

    @field_validator("q")
    @classmethod
    def _search_text(cls, value: str | None) -> str | None:
        if value is None:
            return None
        text = value.strip().lower()
        if not text:
            raise ValueError("must not be blank")
        if _CONTROL_RE.search(text):
            raise ValueError("must not contain control characters")
        return text

    @field_validator("maxTotal")
    @classmethod
    def _max_not_below_min(
        cls, value: Decimal | None, info: ValidationInfo
    ) -> Decimal | None:
        low = info.data.get("minTotal")
        if value is not None and low is not None and value < low:
            raise ValueError("must be greater than or equal to minTotal")
        return value

    @field_validator("placedTo")
    @classmethod
    def _to_not_before_from(
        cls, value: datetime | None, info: ValidationInfo
    ) -> datetime | None:
        start = info.data.get("placedFrom")
        if value is not None and start is not None and value < start:
            raise ValueError("must not be before placedFrom")
        return value


class _SalesRange(Params):
    def days(self) -> tuple[date, date]:
        """The first and the last day of the range (`from` can only be read by name)."""
        first, last = (getattr(self, name) for name in ("from", "to"))
        return first, last

    @field_validator("to", check_fields=False)
    @classmethod
    def _range(cls, value: date, info: ValidationInfo) -> date:
        start = info.data.get("from")
        if start is not None:
            if value < start:
                raise ValueError("must not be before from")
            if (value - start) >= timedelta(days=MAX_STATS_DAYS):
                raise ValueError(f"the range may cover at most {MAX_STATS_DAYS} days")
        return value


# `from` is a Python keyword, so this model is built rather than declared.
_SALES_RANGE_FIELDS: dict[str, Any] = {
    "from": (Annotated[Day, Field(description="The first UTC day.")], ...),
    "to": (
        Annotated[
            Day,
            Field(
                description=f"The last UTC day: not before from, and the range covers "
                f"at most {MAX_STATS_DAYS} days (to - from <= {MAX_STATS_DAYS - 1} days)."
            ),
        ],
        ...,
    ),
}
SalesStatsParams = create_model(
    "SalesStatsParams", __base__=_SalesRange, **_SALES_RANGE_FIELDS
)


# --- responses ---------------------------------------------------------------------------


class ShippingAddress(BaseModel):
    street: str
    city: str
    state: str
    postalCode: str
    country: str


class OrderLine(BaseModel):
    productId: str
    sku: str
    name: str
    unitPrice: float
    quantity: int
    lineTotal: float


class StatusChange(BaseModel):
    status: str
    at: str


class Actor(BaseModel):
    subject: str
    roles: list[str]


class OrderChange(BaseModel):
    """One version of the order: what changed, who did it (token subject and roles), when."""

    version: int
    change: str
    by: Actor
    at: str


class CustomerRef(BaseModel):
    name: str
    email: str


class OrderDetail(BaseModel):
    id: str
    customerId: str
    customer: CustomerRef
    status: str
    items: list[OrderLine]
    itemCount: int
    total: float
    shippingAddress: ShippingAddress
    trackingNumber: str | None
    cancellationReason: str | None
    placedAt: str
    updatedAt: str
    version: int
    history: list[StatusChange]
    changes: list[OrderChange]


class OrdersByStatus(BaseModel):
    placed: int
    shipped: int
    delivered: int
    cancelled: int


class CustomerDetail(BaseModel):
    id: str
    name: str
    email: str
    creditLimit: float
    orderCount: int
    openOrderCount: int
    totalSpent: float
    ordersByStatus: OrdersByStatus
    lastOrderAt: str | None
    version: int


class OrderSummary(BaseModel):
    id: str
    status: str
    itemCount: int
    total: float
    placedAt: str
    version: int


class OrderPage(BaseModel):
    items: list[OrderSummary]
    continuationToken: str | None = Field(
        description="Opaque; pass it back unchanged, with the same filters, for the next page. "
        "null on the last page."
    )


class ProductDetail(BaseModel):
    id: str
    sku: str
    name: str
    price: float
    stock: int
    unitsSold: int
    revenue: float
    version: int


class SalesDay(BaseModel):
    date: str
    orders: int
    revenue: float
    cancelled: int


class SalesTotals(BaseModel):
    orders: int
    revenue: float
    cancelled: int


class TopProduct(BaseModel):
    productId: str
    name: str
    units: int
    revenue: float


class SalesStats(BaseModel):
    days: list[SalesDay]
    totals: SalesTotals
    topProducts: list[TopProduct]


# --- document -> API shapes --------------------------------------------------------------


def order_detail(document: dict[str, Any]) -> dict[str, Any]:
    """The API shape of an order document."""
    order = document["order"]
    return {
        "id": order["id"],
        "customerId": order["customerId"],
        "customer": {
            "name": document["customer"]["name"],
            "email": document["customer"]["email"],
        },
        "status": order["status"],
        "items": order["items"],
        "itemCount": order["itemCount"],
        "total": order["total"],
        "shippingAddress": order["shippingAddress"],
        "trackingNumber": order["trackingNumber"],
        "cancellationReason": order["cancellationReason"],
        "placedAt": order["placedAt"],
        "updatedAt": order["updatedAt"],
        "version": document["version"],
        "history": order["history"],
        "changes": order.get(
            "changes", []
        ),  # absent on orders projected before it existed
    }


def order_summary(row: dict[str, Any]) -> dict[str, Any]:
    return {name: row[name] for name in OrderSummary.model_fields}
