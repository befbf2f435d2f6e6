"""The projection runner's failure handling: retry what a retry can fix, dead-letter the rest,
never lose an event silently. Pure: an in-memory store stands in for Cosmos DB."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.cosmos.exceptions import CosmosHttpResponseError

from shared.events import Event
from sync import order_detail
from sync.runner import Delivery, process
from tests.memory_store import DeadLetterList, MemoryStore


def order_event(version: int = 1) -> Event:
    order = {
        "id": "o1",
        "customerId": "c1",
        "status": "placed",
        "total": 1,
        "placedAt": "2026-01-01T00:00:00Z",
        "items": [{"name": "Widget"}],
        "version": version,
    }
    return Event(
        "OrderPlaced",
        "order",
        "o1",
        version,
        "c1",
        datetime.now(UTC),
        "corr",
        "cmd",
        {
            "order": order,
            "customer": {"id": "c1", "name": "Ada", "email": "a@x.io", "version": 1},
        },
        event_id=str(uuid.uuid4()),
        position=version,
    )


def delivery(event_or_body, sequence: int = 0) -> Delivery:
    body = (
        event_or_body if isinstance(event_or_body, bytes) else event_or_body.to_bytes()
    )
    return Delivery(body, "0", sequence)


class FailingStore(MemoryStore):
    def __init__(
        self, error: Exception, containers: tuple[str, ...] = ("orders",)
    ) -> None:
        super().__init__()
        self.error, self.containers = error, containers

    def execute(self, write) -> None:
        if write.container in self.containers:
            raise self.error
        super().execute(write)


class BrokenDeadLetters:
    def put(self, *args, **kwargs) -> str:
        raise ConnectionError("blob storage unavailable")


def run(store, dead, deliveries, final: bool):
    return process(
        order_detail.NAME,
        order_detail.plan,
        deliveries,
        store,
        dead,
        final_attempt=final,
    )


@pytest.mark.parametrize(
    "error",
    [
        CosmosHttpResponseError(status_code=429, message="throttled"),
        ClientAuthenticationError("token"),
        TimeoutError("slow"),
    ],
)
def test_errors_a_retry_can_fix_are_raised_until_the_last_attempt(error):
    dead = DeadLetterList()
    with pytest.raises(type(error)):
        run(FailingStore(error), dead, [delivery(order_event())], final=False)
    assert dead.items == []
    result = run(FailingStore(error), dead, [delivery(order_event())], final=True)
    assert len(result.dead_lettered) == 1 and dead.items[0][1].sequence_number == 0


def test_a_document_cosmos_refuses_is_dead_lettered_at_once():
    dead = DeadLetterList()
    refused = CosmosHttpResponseError(status_code=400, message="bad")
    run(FailingStore(refused), dead, [delivery(order_event())], final=False)
    assert len(dead.items) == 1 and dead.items[0][2].startswith(
        "CosmosHttpResponseError"
    )


def test_an_unparseable_event_is_dead_lettered_and_the_rest_applied():
    store, dead = MemoryStore(), DeadLetterList()
    result = run(
        store, dead, [delivery(b"{oops", 0), delivery(order_event(), 1)], final=False
    )
    assert (
        result.applied == 1
        and len(dead.items) == 1
        and "unparseable" in dead.items[0][2]
    )
    assert store.docs[("orders", "o1", "o1")]["status"] == "placed"


def test_when_dead_lettering_fails_the_batch_is_retried_then_the_event_is_logged_whole(
    caplog,
):
    with pytest.raises(ConnectionError):
        run(MemoryStore(), BrokenDeadLetters(), [delivery(b"{oops")], final=False)
    with caplog.at_level(logging.CRITICAL, logger="sync.runner"):
        run(MemoryStore(), BrokenDeadLetters(), [delivery(b"{oops")], final=True)
    assert "{oops" in caplog.text


def test_a_failed_position_write_does_not_fail_the_batch():
    store = FailingStore(TimeoutError("slow"), containers=("projection-state",))
    result = run(store, DeadLetterList(), [delivery(order_event())], final=False)
    assert result.writes == 1 and store.docs[("orders", "o1", "o1")]["version"] == 1
