"""The events each aggregate emits, built from its new state: one builder per aggregate.

Every event is stamped with the command's context (when, who, correlation and
causation ids); its payload is the typed one the catalogue (`shared.events`) declares.
"""

from __future__ import annotations

from typing import Any

from commands.domain import Customer, Order, Product
from commands.execution import CommandContext
from shared.events import (
    AggregateType,
    CustomerChanged,
    CustomerRegistered,
    Event,
    EventType,
    OrderChanged,
    OrderChangeRecord,
    ProductChanged,
    ProductCreated,
    ProductStockAdjusted,
    ProductStockMoved,
)


def _stamped(
    ctx: CommandContext,
    event_type: EventType,
    aggregate: AggregateType,
    aggregate_id: str,
    *,
    version: int,
    partition_key: str,
    data: Any,
) -> Event:
    return Event(
        event_type=event_type,
        aggregate_type=aggregate,
        aggregate_id=aggregate_id,
        aggregate_version=version,
        partition_key=partition_key,
        occurred_at=ctx.now,
        correlation_id=ctx.correlation_id,
        causation_id=ctx.command_id,
        data=data,
        actor=ctx.actor,
    )


class _OwnStreamEvents:
    """Events of an aggregate that is its own partition (a customer's events share it
    with the customer's orders, so one partition orders a customer's whole story)."""

    aggregate: AggregateType

    def __init__(self, ctx: CommandContext) -> None:
        self._ctx = ctx

    def _event(self, event_type: EventType, of: Customer | Product, data: Any) -> Event:
        return _stamped(
            self._ctx,
            event_type,
            self.aggregate,
            of.id,
            version=of.version,
            partition_key=of.id,
            data=data,
        )


class CustomerEvents(_OwnStreamEvents):
    aggregate = AggregateType.CUSTOMER

    def registered(self, customer: Customer) -> Event:
        data = CustomerRegistered(customer=customer.state())
        return self._event(EventType.CUSTOMER_REGISTERED, customer, data)

    def changed(self, customer: Customer, changed: list[str]) -> Event:
        data = CustomerChanged(customer=customer.state(), changed=sorted(changed))
        return self._event(EventType.CUSTOMER_CHANGED, customer, data)


class ProductEvents(_OwnStreamEvents):
    aggregate = AggregateType.PRODUCT

    def created(self, product: Product) -> Event:
        data = ProductCreated(product=product.state())
        return self._event(EventType.PRODUCT_CREATED, product, data)

    def changed(self, product: Product, changed: list[str]) -> Event:
        data = ProductChanged(product=product.state(), changed=sorted(changed))
        return self._event(EventType.PRODUCT_CHANGED, product, data)

    def stock_adjusted(self, product: Product, delta: int) -> Event:
        data = ProductStockAdjusted(product=product.state(), delta=delta)
        return self._event(EventType.PRODUCT_STOCK_ADJUSTED, product, data)

    def stock_reserved(self, product: Product, order_id: str) -> Event:
        data = ProductStockMoved(product=product.state(), orderId=order_id)
        return self._event(EventType.PRODUCT_STOCK_RESERVED, product, data)

    def stock_released(self, product: Product, order_id: str) -> Event:
        data = ProductStockMoved(product=product.state(), orderId=order_id)
        return self._event(EventType.PRODUCT_STOCK_RELEASED, product, data)


class OrderEvents:
    """Every order event carries the order's state, its change log and the customer."""

    def __init__(self, ctx: CommandContext) -> None:
        self._ctx = ctx

    def changed(
        self,
        event_type: EventType,
        order: Order,
        changes: list[OrderChangeRecord],
        customer: Customer,
        removed_product_id: str | None = None,
    ) -> Event:
        data = OrderChanged(
            order={**order.state(), "changes": changes}, customer=customer.snapshot()
        )
        if removed_product_id:
            data["removedProductId"] = removed_product_id
        return _stamped(
            self._ctx,
            event_type,
            AggregateType.ORDER,
            order.id,
            version=order.version,
            # With the customer's events: one partition orders a customer's whole story.
            partition_key=order.customer_id,
            data=data,
        )
