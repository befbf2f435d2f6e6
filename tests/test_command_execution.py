"""Commands run without HTTP: a plain CommandCall in, a plain CommandResult out (SQLite)."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from commands import handlers, models
from commands.execution import CommandCall, CommandResult, execute
from commands.functions import command_call, response_of
from shared.errors import IdempotencyKeyReused, PreconditionFailed, ValidationFailed
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
