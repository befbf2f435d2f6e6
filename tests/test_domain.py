"""Pure write-side rules: money, line merging, transitions, order state."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from commands.domain import (
    MAX_LINE_QUANTITY,
    MAX_ORDER_LINES,
    Address,
    CreditIsStaffs,
    Customer,
    InsufficientStock,
    LastLine,
    LineLimitExceeded,
    NoSuchLine,
    Order,
    OrderLine,
    Product,
    StatusForbids,
    StockBelowZero,
    check_transition,
    merge_lines,
    stock_refused,
)
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.money import from_cents, to_cents

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


ADDRESS = Address("s", "c", "st", "pc", "co")


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


# --- the rules, as the business states them ------------------------------------------------

LATER = datetime(2026, 1, 5, tzinfo=UTC)
WIDGET = Product("p1", "SKU-1", "Widget", 1999, 10, 4)
NEW_THING = Product("p3", "SKU-3", "Thing", 250, 5, 1)


def test_a_placed_order_starts_at_version_1_with_its_lines():
    placed = Order.place("o9", "c1", (OrderLine.of(WIDGET, 2),), ADDRESS, NOW)
    assert (placed.status, placed.version, placed.total_cents) == ("placed", 1, 3998)
    assert placed.placed_at == placed.updated_at == NOW


def test_adding_a_new_product_adds_a_line_at_its_current_price():
    after = order().add_line(NEW_THING, 2, LATER)
    assert after.line_for("p3") == OrderLine("p3", "SKU-3", "Thing", 250, 2)
    assert (after.version, after.updated_at) == (2, LATER)
    assert after.total_cents == order().total_cents + 500


def test_adding_to_an_existing_line_keeps_the_price_it_was_bought_at():
    repriced = Product("p1", "SKU-1", "Widget v2", 5000, 10, 9)
    line = order().add_line(repriced, 2, LATER).line_for("p1")
    assert (line.quantity, line.unit_price_cents, line.name) == (5, 1999, "Widget")


def test_a_line_holds_at_most_the_line_limit():
    with pytest.raises(LineLimitExceeded, match="holds 1000; adding 1"):
        order().add_line(Product("p2", "SKU-2", "Gadget", 1, 10, 1), 1, LATER)
    assert MAX_LINE_QUANTITY == 1000


def test_an_order_holds_at_most_the_line_limit_of_lines():
    lines = tuple(
        OrderLine(f"p{i}", f"S{i}", "n", 1, 1) for i in range(MAX_ORDER_LINES)
    )
    full = Order.place("o", "c", lines, ADDRESS, NOW)
    with pytest.raises(LineLimitExceeded, match=f"at most {MAX_ORDER_LINES} lines"):
        full.add_line(Product("px", "SKU-X", "X", 1, 5, 1), 1, LATER)
    full.add_line(Product("p0", "S0", "n", 1, 5, 1), 1, LATER)  # an existing line grows


def test_only_a_placed_order_changes_its_lines_or_address():
    shipped = order("shipped")
    with pytest.raises(
        StatusForbids, match="Cannot add items to an order that is shipped"
    ):
        shipped.add_line(NEW_THING, 1, LATER)
    with pytest.raises(StatusForbids, match="remove items from"):
        shipped.remove_line("p1", LATER)
    with pytest.raises(StatusForbids, match="change the address of"):
        shipped.change_address(ADDRESS, LATER)


def test_removing_a_line_returns_it_and_the_order_without_it():
    after, removed = order().remove_line("p2", LATER)
    assert removed.product_id == "p2" and [x.product_id for x in after.lines] == ["p1"]
    assert after.version == 2


def test_a_missing_line_is_not_found_and_the_last_line_stays():
    with pytest.raises(NoSuchLine) as caught:
        order().remove_line("nope", LATER)
    assert isinstance(caught.value, NotFound)
    single, _ = order().remove_line("p2", LATER)
    with pytest.raises(LastLine, match="cancel the order instead"):
        single.remove_line("p1", LATER)


def test_shipping_delivering_and_cancelling_record_when_and_why():
    shipped = order().ship("TRACK-1", LATER)
    assert (shipped.status, shipped.tracking_number, shipped.shipped_at) == (
        "shipped",
        "TRACK-1",
        LATER,
    )
    delivered = shipped.deliver(LATER)
    assert delivered.status == "delivered" and delivered.version == 3
    cancelled = order().cancel("changed mind", LATER)
    assert (cancelled.status, cancelled.cancellation_reason) == (
        "cancelled",
        "changed mind",
    )
    with pytest.raises(StatusForbids):
        delivered.cancel("too late", LATER)


def test_stock_never_goes_below_zero():
    assert WIDGET.reserve(10).stock == 0 and WIDGET.reserve(10).version == 5
    assert WIDGET.release(3).stock == 13
    with pytest.raises(InsufficientStock, match="SKU-1 has 10, 11 requested."):
        WIDGET.reserve(11)
    with pytest.raises(StockBelowZero, match="SKU-1 has 10, delta is -11"):
        WIDGET.adjust_stock(-11)


def test_one_refusal_names_every_short_product():
    refused = stock_refused([(WIDGET, 11), (NEW_THING, 6)])
    assert isinstance(refused, Conflict)
    assert refused.detail == (
        "Insufficient stock: SKU-1 has 10, 11 requested; SKU-3 has 5, 6 requested"
    )


def test_a_customer_changes_what_is_given_and_only_staff_change_credit():
    ada = Customer.register("c1", "Ada", "ada@example.com", 10_000, "sub-1")
    renamed = ada.change(name="Ada L.")
    assert (renamed.name, renamed.email, renamed.version) == ("Ada L.", ada.email, 2)
    assert ada.change(credit_limit_cents=5).credit_limit_cents == 5
    with pytest.raises(CreditIsStaffs):
        ada.change(credit_limit_cents=5, self_service=True)
    assert ada.change(name="Me", self_service=True).name == "Me"


def test_a_product_changes_name_and_price_and_versions():
    changed = WIDGET.change(price_cents=2500)
    assert (changed.name, changed.price_cents, changed.version) == ("Widget", 2500, 5)
