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
def test_errors_a_retry_can_fix_are_raised_then_kept_for_the_catch_up_never_dead_lettered(
    error,
):
    dead = DeadLetterList()
    with pytest.raises(type(error)):
        run(FailingStore(error), dead, [delivery(order_event())], final=False)
    assert dead.items == []
    store = FailingStore(error)
    result = run(store, dead, [delivery(order_event(), 7)], final=True)
    # Not the event's fault: nothing dead-lettered, and no position recorded past it.
    assert dead.items == [] and result.dead_lettered == [] and result.unapplied == 1
    assert not [d for d in store.docs.values() if d.get("kind") == "position"]


def test_the_position_advances_only_contiguously():
    store, dead = MemoryStore(), DeadLetterList()
    run(store, dead, [delivery(order_event(1), 0)], final=False)
    position = store.docs[
        ("projection-state", "order-detail", "order-detail:position:0")
    ]
    assert position["sequenceNumber"] == 0
    # Sequences 1-4 never applied (an outage on the last retry): a later batch is applied,
    # but the position stays at 0, which is the gap the catch-up pass re-drives.
    run(store, dead, [delivery(order_event(2), 5)], final=False)
    assert position["sequenceNumber"] == 0
    assert store.docs[("orders", "o1", "o1")]["version"] == 2
    run(store, dead, [delivery(order_event(2), s) for s in (1, 2, 3, 4)], final=False)
    assert position["sequenceNumber"] == 4


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
    store = MemoryStore()
    with caplog.at_level(logging.CRITICAL, logger="sync.runner"):
        result = run(store, BrokenDeadLetters(), [delivery(b"{oops")], final=True)
    assert "{oops" in caplog.text
    # ... and it stays unapplied (no position past it), so the catch-up pass meets it again.
    assert result.unapplied == 1 and store.docs == {}


def test_an_event_of_a_type_no_projection_knows_is_skipped_and_counted(caplog):
    from dataclasses import replace

    from sync import unknown_events

    event = replace(order_event(), event_type="OrderGiftWrapped")
    store = MemoryStore()
    with caplog.at_level(logging.WARNING, logger="sync.unknown_events"):
        first = run(store, DeadLetterList(), [delivery(event, 0)], final=False)
        second = run(store, DeadLetterList(), [delivery(event, 1)], final=False)
    assert first.ignored == second.ignored == 1 and first.dead_lettered == []
    assert unknown_events.counts()["OrderGiftWrapped"] >= 2
    assert caplog.text.count("OrderGiftWrapped") == 1  # logged once per type
    assert ("orders", "o1", "o1") not in store.docs


def test_a_failed_position_write_does_not_fail_the_batch():
    store = FailingStore(TimeoutError("slow"), containers=("projection-state",))
    result = run(store, DeadLetterList(), [delivery(order_event())], final=False)
    assert result.writes == 1 and store.docs[("orders", "o1", "o1")]["version"] == 1


def test_the_concrete_writer_and_dead_letter_store_satisfy_the_runner_ports() -> None:
    from sync.cosmos_writer import CosmosWriter
    from sync.dead_letters import DeadLetterStore
    from sync.ports import DeadLetters, Writer

    # Structural: nothing inherits from the ports. Annotated so a type checker checks it too.
    writer: Writer = CosmosWriter(lambda name: None)  # type: ignore[arg-type,return-value]
    store: DeadLetters = DeadLetterStore(container=None)  # type: ignore[arg-type]
    assert isinstance(writer, Writer) and isinstance(MemoryStore(), Writer)
    assert isinstance(store, DeadLetters) and isinstance(DeadLetterList(), DeadLetters)
