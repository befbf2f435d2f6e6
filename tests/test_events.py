"""The event catalogue and the upcasting of stored events to the current shape."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

from shared.events import (
    CUSTOMER_EVENTS,
    ORDER_EVENTS,
    PAYLOADS,
    PRODUCT_EVENTS,
    SCHEMA_VERSION,
    UPCASTERS,
    Event,
    EventType,
)

NOW = datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)


def registered(**data) -> Event:
    customer = {
        "id": "c1",
        "name": "Ada",
        "email": "ada@example.com",
        "version": 1,
        "ownerSubject": None,
        "creditLimit": Decimal("100.50"),
    }
    return Event(
        event_type=EventType.CUSTOMER_REGISTERED,
        aggregate_type="customer",
        aggregate_id="c1",
        aggregate_version=1,
        partition_key="c1",
        occurred_at=NOW,
        correlation_id="corr",
        causation_id="cmd",
        data={"customer": customer, **data},
        event_id="e1",
    )


def test_every_event_type_belongs_to_one_aggregate_and_has_a_payload():
    assert CUSTOMER_EVENTS | PRODUCT_EVENTS | ORDER_EVENTS == frozenset(EventType)
    assert not (CUSTOMER_EVENTS & PRODUCT_EVENTS or PRODUCT_EVENTS & ORDER_EVENTS)
    assert set(PAYLOADS) == set(EventType)


def test_the_wire_format_carries_plain_strings():
    doc = registered().to_json()
    assert doc["type"] == "CustomerRegistered" and type(doc["type"]) is str
    assert (
        json.loads(registered().to_bytes())["data"]["customer"]["creditLimit"] == 100.5
    )
    assert registered().properties()["eventType"] == "CustomerRegistered"


def test_an_event_reads_back_as_it_was_written():
    event = registered().with_position(7)
    assert Event.from_bytes(event.to_bytes()) == event
    assert Event.from_bytes(event.to_bytes()).event_type in CUSTOMER_EVENTS


def test_an_event_of_a_version_without_upcaster_is_read_as_it_is():
    doc = {**registered().to_json(), "schemaVersion": 9}
    assert Event.from_json(doc).schema_version == 9


def _credit_in_cents(doc: dict) -> dict:
    """A made-up version 2 of CustomerRegistered: the credit limit in integer cents."""
    customer = dict(doc["data"]["customer"])
    cents = customer.pop("creditLimitCents")
    customer["creditLimit"] = (Decimal(cents) / 100).quantize(Decimal("0.01"))
    return {
        **doc,
        "schemaVersion": SCHEMA_VERSION,
        "data": {**doc["data"], "customer": customer},
    }


def test_a_stored_event_of_another_shape_is_upcast_as_it_is_read(monkeypatch):
    monkeypatch.setitem(UPCASTERS, (EventType.CUSTOMER_REGISTERED, 2), _credit_in_cents)
    current = registered().to_json()
    version_2 = {**current, "schemaVersion": 2}
    customer = dict(current["data"]["customer"])
    del customer["creditLimit"]
    version_2["data"] = {"customer": {**customer, "creditLimitCents": 10050}}

    event = Event.from_bytes(json.dumps(version_2).encode())

    assert event == registered()
    assert event.data["customer"]["creditLimit"] == Decimal("100.50")
    assert event.schema_version == SCHEMA_VERSION
    # Other types and versions are untouched by that upcaster.
    assert Event.from_json(current) == registered()
