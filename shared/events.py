"""The events of the system: their catalogue, their payloads and the envelope they travel in.

Events carry state: `data` holds the aggregate's new state and the denormalized
names projections need, so a projection never calls back into the write side.
`position` is the global outbox position, known once the outbox row exists;
`aggregateVersion` orders events of one aggregate. An event written in an older
shape is brought to the current one as it is read (`UPCASTERS`), so projections
only ever see the shapes declared here.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypedDict

from shared.encoding import to_jsonable

SCHEMA_VERSION = 1


class EventType(StrEnum):
    CUSTOMER_REGISTERED = "CustomerRegistered"
    CUSTOMER_CHANGED = "CustomerChanged"
    PRODUCT_CREATED = "ProductCreated"
    PRODUCT_CHANGED = "ProductChanged"
    PRODUCT_STOCK_ADJUSTED = "ProductStockAdjusted"
    PRODUCT_STOCK_RESERVED = "ProductStockReserved"
    PRODUCT_STOCK_RELEASED = "ProductStockReleased"
    ORDER_PLACED = "OrderPlaced"
    ORDER_ITEM_ADDED = "OrderItemAdded"
    ORDER_ITEM_REMOVED = "OrderItemRemoved"
    ORDER_SHIPPING_ADDRESS_CHANGED = "OrderShippingAddressChanged"
    ORDER_SHIPPED = "OrderShipped"
    ORDER_DELIVERED = "OrderDelivered"
    ORDER_CANCELLED = "OrderCancelled"


class AggregateType(StrEnum):
    CUSTOMER = "customer"
    PRODUCT = "product"
    ORDER = "order"


def _of(prefix: str) -> frozenset[EventType]:
    return frozenset(t for t in EventType if t.value.startswith(prefix))


CUSTOMER_EVENTS = _of("Customer")
PRODUCT_EVENTS = _of("Product")
ORDER_EVENTS = _of("Order")


class OrderStatus(StrEnum):
    PLACED = "placed"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


# Open orders count against the customer's credit limit.
OPEN_STATUSES = frozenset({OrderStatus.PLACED, OrderStatus.SHIPPED})


# --- payloads (the `data` of each event) -------------------------------------------------


class CustomerSnapshot(TypedDict):
    """What other documents carry of a customer; the owner confines self-service reads."""

    id: str
    name: str
    email: str
    version: int
    ownerSubject: str | None


class CustomerState(CustomerSnapshot):
    creditLimit: Decimal


class ProductState(TypedDict):
    id: str
    sku: str
    name: str
    price: Decimal
    stock: int
    version: int


class OrderLineState(TypedDict):
    productId: str
    sku: str
    name: str
    unitPrice: Decimal
    quantity: int
    lineTotal: Decimal


class StatusStep(TypedDict):
    status: str
    at: str | None


class OrderChangeRecord(TypedDict):
    version: int
    change: str
    by: dict[str, Any]
    at: str | None


class _OrderFields(TypedDict):
    id: str
    customerId: str
    status: str
    items: list[OrderLineState]
    itemCount: int
    total: Decimal
    shippingAddress: dict[str, str]
    trackingNumber: str | None
    cancellationReason: str | None
    placedAt: str | None
    updatedAt: str | None
    version: int
    history: list[StatusStep]


class OrderState(_OrderFields, total=False):
    """An order's state; in events also its change log (who made each version)."""

    changes: list[OrderChangeRecord]


class CustomerRegistered(TypedDict):
    customer: CustomerState


class CustomerChanged(TypedDict):
    customer: CustomerState
    changed: list[str]


class ProductCreated(TypedDict):
    product: ProductState


class ProductChanged(TypedDict):
    product: ProductState
    changed: list[str]


class ProductStockAdjusted(TypedDict):
    product: ProductState
    delta: int


class ProductStockMoved(TypedDict):
    """ProductStockReserved and ProductStockReleased: the product and the order that moved it."""

    product: ProductState
    orderId: str


class _OrderEventFields(TypedDict):
    order: OrderState
    customer: CustomerSnapshot


class OrderChanged(_OrderEventFields, total=False):
    """Every order event: the order's new state and its customer's snapshot."""

    # OrderItemRemoved only: the line is gone from the state, so it is named for projections.
    removedProductId: str


PAYLOADS: dict[EventType, type] = {
    EventType.CUSTOMER_REGISTERED: CustomerRegistered,
    EventType.CUSTOMER_CHANGED: CustomerChanged,
    EventType.PRODUCT_CREATED: ProductCreated,
    EventType.PRODUCT_CHANGED: ProductChanged,
    EventType.PRODUCT_STOCK_ADJUSTED: ProductStockAdjusted,
    EventType.PRODUCT_STOCK_RESERVED: ProductStockMoved,
    EventType.PRODUCT_STOCK_RELEASED: ProductStockMoved,
    **{t: OrderChanged for t in ORDER_EVENTS},
}


# --- upcasting ----------------------------------------------------------------------------

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

# (event type, schemaVersion) -> a function returning the event document in the current
# shape (schemaVersion = SCHEMA_VERSION). Empty while every writer emits the current shape;
# a change of shape adds its entry here and the readers keep working on stored events.
UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def upcast(doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` in the current shape: as it is, or through the upcaster of its (type, version)."""
    upcaster = UPCASTERS.get((doc["type"], doc["schemaVersion"]))
    return upcaster(doc) if upcaster is not None else doc


# --- the envelope -------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    event_type: str
    aggregate_type: str
    aggregate_id: str
    aggregate_version: int
    partition_key: str
    occurred_at: datetime
    correlation_id: str
    causation_id: str
    data: dict[str, Any]
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    schema_version: int = SCHEMA_VERSION
    position: int | None = None
    # Who caused it: {"subject": <Entra ID oid/sub>, "roles": [...]} (None: the system).
    actor: dict[str, Any] | None = None

    def with_position(self, position: int) -> Event:
        return replace(self, position=position)

    def to_json(self) -> dict[str, Any]:
        return {
            "eventId": self.event_id,
            "type": str(self.event_type),
            "schemaVersion": self.schema_version,
            "aggregateType": str(self.aggregate_type),
            "aggregateId": self.aggregate_id,
            "aggregateVersion": self.aggregate_version,
            "position": self.position,
            "partitionKey": self.partition_key,
            "occurredAt": self.occurred_at.isoformat(timespec="microseconds"),
            "correlationId": self.correlation_id,
            "causationId": self.causation_id,
            "actor": self.actor,
            "data": to_jsonable(self.data),
        }

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json(), separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Event:
        doc = upcast(doc)
        return cls(
            event_id=doc["eventId"],
            event_type=doc["type"],
            schema_version=doc["schemaVersion"],
            aggregate_type=doc["aggregateType"],
            aggregate_id=doc["aggregateId"],
            aggregate_version=doc["aggregateVersion"],
            position=doc.get("position"),
            partition_key=doc["partitionKey"],
            occurred_at=datetime.fromisoformat(doc["occurredAt"]),
            correlation_id=doc["correlationId"],
            causation_id=doc["causationId"],
            data=doc["data"],
            actor=doc.get("actor"),  # absent from events written before it existed
        )

    @classmethod
    def from_bytes(cls, body: bytes) -> Event:
        # Money arrives as JSON numbers; parse them straight to Decimal, never through float.
        return cls.from_json(json.loads(body, parse_float=Decimal))

    def properties(self) -> dict[str, str]:
        """Application properties on the transport message, for routing and diagnostics."""
        return {
            "eventType": str(self.event_type),
            "schemaVersion": str(self.schema_version),
            "aggregateId": self.aggregate_id,
            "correlationId": self.correlation_id,
        }
