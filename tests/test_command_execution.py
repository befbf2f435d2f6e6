"""Commands run without HTTP: a plain CommandCall in, a plain CommandResult out (SQLite)."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from commands import handlers, models
from commands.execution import CommandCall, CommandResult, execute
from commands.functions import command_call, response_of
from shared import outbox
from shared.errors import IdempotencyKeyReused, PreconditionFailed, ValidationFailed
from shared.events import PAYLOADS, EventType
from shared.http import Request
from shared.publisher import LocalLogPublisher
from shared.sql.db import Database, _sqlite_connect
from shared.sql.migrate import apply_migrations


@pytest.fixture
def run(tmp_path):
    db = Database(_sqlite_connect(str(tmp_path / "orders.db")), "sqlite")
    apply_migrations(db)
    events = LocalLogPublisher(str(tmp_path / "events.db"), 4)

    def run(handler, body, key=None, expected=None, **route) -> CommandResult:
        call = CommandCall(
            route=handler.__name__,
            correlation_id="corr",
            body=body,
            route_params=route,
            expected_version=expected,
            idempotency_key=key,
        )
        return execute(
            call, lambda tx, ctx: handler(tx, ctx, body, **route), db, events
        )

    run.db = db
    return run


def customer(name: str = "Ada") -> models.RegisterCustomer:
    return models.RegisterCustomer(
        name=name, email=f"{uuid.uuid4().hex}@example.com", creditLimit=Decimal(100)
    )


def test_a_command_answers_with_its_location_and_version(run):
    result = run(handlers.register_customer, customer())
    assert result.status == 202 and result.body["version"] == 1
    assert result.headers() == {
        "Location": f"/api/customers/{result.body['id']}",
        "ETag": '"1"',
    }


def test_a_repeated_key_replays_the_first_answer_and_refuses_another_request(run):
    body = customer()
    first = run(handlers.register_customer, body, key="k-1")
    assert run(handlers.register_customer, body, key="k-1") == first
    with pytest.raises(IdempotencyKeyReused):
        run(handlers.register_customer, customer("Bob"), key="k-1")


def test_an_expected_version_that_is_not_current_is_refused(run):
    created = run(handlers.register_customer, customer())
    change = models.ChangeCustomer(name="Ada L.")
    with pytest.raises(PreconditionFailed) as caught:
        run(
            handlers.change_customer, change, expected=7, customer_id=created.body["id"]
        )
    assert caught.value.headers == {"ETag": '"1"'}
    changed = run(
        handlers.change_customer, change, expected=1, customer_id=created.body["id"]
    )
    assert changed.etag == '"2"'


def test_the_route_adapter_reads_the_headers_and_makes_the_response():
    request = Request(
        "POST",
        {"customerId": "c"},
        {},
        {"if-match": 'W/"3"', "idempotency-key": "abc"},
        "corr",
    )
    call = command_call(request, "change_customer")
    assert (call.expected_version, call.idempotency_key) == (3, "abc")
    with pytest.raises(ValidationFailed):
        command_call(Request("POST", {}, {}, {"if-match": "3x"}, "c"), "r")
    response = response_of(CommandResult({"id": "x"}, location="/l", etag='"1"'))
    assert (response.status, response.headers) == (
        202,
        {"Location": "/l", "ETag": '"1"'},
    )


ADDRESS = models.Address(street="s", city="c", state="st", postalCode="p", country="US")


def test_every_event_carries_the_payload_the_catalogue_declares(run):
    c = run(handlers.register_customer, customer()).body["id"]
    run(handlers.change_customer, models.ChangeCustomer(name="B"), customer_id=c)
    products = [
        run(
            handlers.create_product,
            models.CreateProduct(
                sku=uuid.uuid4().hex[:8], name="P", price=Decimal(1), stock=10
            ),
        ).body["id"]
        for _ in range(2)
    ]
    p, q = products
    run(handlers.change_product, models.ChangeProduct(name="P2"), product_id=p)
    run(handlers.adjust_stock, models.AdjustStock(delta=2), product_id=p)
    line = models.OrderLineRequest(productId=p, quantity=1)
    place = models.PlaceOrder(customerId=c, items=[line], shippingAddress=ADDRESS)
    o = run(handlers.place_order, place).body["id"]
    add = models.AddItem(productId=q, quantity=1)
    run(handlers.add_item, add, order_id=o)
    run(handlers.remove_item, models.NoBody(), order_id=o, product_id=q)
    run(handlers.change_shipping_address, ADDRESS, order_id=o)
    run(handlers.ship_order, models.ShipOrder(trackingNumber="T"), order_id=o)
    run(handlers.deliver_order, models.NoBody(), order_id=o)
    o2 = run(handlers.place_order, place).body["id"]
    run(handlers.cancel_order, models.CancelOrder(reason="r"), order_id=o2)

    events = outbox.read_range(run.db, 0, 1000)
    assert {e.event_type for e in events} == set(EventType)
    for event in events:
        payload = PAYLOADS[EventType(event.event_type)]
        keys = set(event.data)
        assert (
            payload.__required_keys__
            <= keys
            <= payload.__required_keys__ | (payload.__optional_keys__)
        ), event.event_type
