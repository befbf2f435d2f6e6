"""Pure write-side rules: money, line merging, transitions, order state."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from commands.domain import (
    Address,
    Order,
    OrderLine,
    check_transition,
    merge_lines,
)
from shared.errors import Conflict, ValidationFailed
from shared.money import from_cents, to_cents

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def order(status: str = "placed", **changes) -> Order:
    lines = (
        OrderLine("p1", "SKU-1", "Widget", 1999, 3),
        OrderLine("p2", "SKU-2", "Gadget", 1, 1000),
    )
    return Order(
        "o1",
        "c1",
        status,
        lines,
        Address("s", "c", "st", "pc", "co"),
        NOW,
        NOW,
        1,
        **changes,
    )


@pytest.mark.parametrize(
    "amount", ["0.01", "19.99", "1000", "12345678901234.99", "0.10"]
)
def test_money_round_trips_exactly_through_cents(amount):
    assert from_cents(to_cents(Decimal(amount))) == Decimal(amount)


def test_order_total_is_exact_decimal_arithmetic():
    state = order().state()
    assert state["total"] == Decimal("69.97")  # 3 x 19.99 + 1000 x 0.01, no float drift
    assert state["itemCount"] == 1003
    assert [line["lineTotal"] for line in state["items"]] == [
        Decimal("59.97"),
        Decimal("10.00"),
    ]


def test_merge_lines_adds_repeats_and_sorts_by_product():
    assert merge_lines([("B", 2), ("a", 1), ("b", 3)]) == [("a", 1), ("b", 5)]


def test_merge_lines_refuses_a_merged_line_over_1000():
    with pytest.raises(ValidationFailed) as caught:
        merge_lines([("a", 600), ("a", 401)])
    assert caught.value.errors[0].field == "items"


@pytest.mark.parametrize(
    ("status", "action", "expected"),
    [
        ("placed", "ship", "shipped"),
        ("shipped", "deliver", "delivered"),
        ("placed", "cancel", "cancelled"),
    ],
)
def test_legal_transitions(status, action, expected):
    assert check_transition(order(status), action) == expected


@pytest.mark.parametrize(
    ("status", "action"),
    [
        ("shipped", "ship"),
        ("placed", "deliver"),
        ("shipped", "cancel"),
        ("delivered", "cancel"),
        ("cancelled", "ship"),
        ("delivered", "deliver"),
    ],
)
def test_illegal_transitions_conflict(status, action):
    with pytest.raises(Conflict):
        check_transition(order(status), action)


def test_history_lists_the_status_changes_in_order():
    later = datetime(2026, 1, 3, tzinfo=UTC)
    history = order("shipped", shipped_at=later).history()
    assert history == [
        {"status": "placed", "at": "2026-01-02T03:04:05.000000Z"},
        {"status": "shipped", "at": "2026-01-03T00:00:00.000000Z"},
    ]


def test_a_caller_is_confined_to_their_own_records_only_when_customer_is_all_that_lets_them_in():
    from shared.auth import ADMIN, CUSTOMER, SUPPORT, Principal

    shopper = Principal("s-1", frozenset({CUSTOMER}))
    both = Principal("s-2", frozenset({CUSTOMER, SUPPORT}))
    assert shopper.owner_scope((ADMIN, CUSTOMER)) == "s-1"
    assert (
        both.owner_scope((ADMIN, SUPPORT, CUSTOMER)) is None
    )  # Support reads any record
    assert both.owner_scope((ADMIN, CUSTOMER)) == "s-2"  # but commands only its own
    assert shopper.granted((ADMIN, SUPPORT)) == frozenset()
    assert shopper.actor() == {"subject": "s-1", "roles": [CUSTOMER]}
