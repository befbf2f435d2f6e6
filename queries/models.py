"""Query parameters and response shapes: validation and OpenAPI schemas."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field


class Params(BaseModel):
    # Query strings are text: allow "5" for 5, but nothing unknown.
    model_config = ConfigDict(extra="forbid")


class ReadYourWrites(Params):
    minVersion: Annotated[int, Field(ge=1)] | None = None
    waitMs: Annotated[int, Field(ge=0, le=5000)] = 0


class Address(BaseModel):
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
    shippingAddress: Address
    trackingNumber: str | None
    cancellationReason: str | None
    placedAt: str
    updatedAt: str
    version: int
    history: list[StatusChange]


def order_detail(document: dict[str, Any]) -> dict[str, Any]:
    """The API shape of an order document."""
    order = document["order"]
    return {
        "id": order["id"],
        "customerId": order["customerId"],
        "customer": document["customer"],
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
    }
