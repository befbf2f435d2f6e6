"""Telemetry over the real local stack, read back from in-memory exporters: one trace from a
request through SQL, the outbox and the event log to every projection; a command the relay
publishes later continues its trace; every metric with its attributes; the lag gauge says
what GET /api/projections says.

The dev host runs as `tests.telemetry_host` (in-memory exporters in each of its two
processes) on a stack of its own, so no other test's traffic or consumers mix in.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from devtools.host_process import DevHost
from devtools.stack import LocalStack
from shared.eventlog import LocalEventLog, OutgoingEvent
from shared.events import Event
from shared.telemetry import CORRELATION_ID, METRICS
from sync.projections import PROJECTIONS
from tests.api import ADDRESS, accepted, customer, product, unique, wait_for

pytestmark = pytest.mark.stack

T = TypeVar("T")
HUB = "domain-events"


@dataclass
class Traced:
    stack: LocalStack
    host: DevHost
    http: httpx.Client
    folder: Path

    def _dump(self, functions: str, what: str) -> list[Any]:
        """What the processes running `functions` hold (the triggers: every worker's)."""
        found: list[Any] = []
        for file in sorted(self.folder.glob(f"{functions}*.port")):
            port = file.read_text()
            found += httpx.get(f"http://127.0.0.1:{port}/{what}", timeout=10).json()
        return found

    def spans(self, functions: str) -> list[dict[str, Any]]:
        return self._dump(functions, "spans")

    def metrics(self, *functions: str) -> dict[str, list[dict[str, Any]]]:
        """Metric name -> data points, over the given processes."""
        out: dict[str, list[dict[str, Any]]] = {}
        for name in functions or ("http", "triggers"):
            for metric in self._dump(name, "metrics"):
                out.setdefault(metric["name"], []).extend(metric["points"])
        return out


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traced]:
    folder = tmp_path_factory.mktemp("telemetry")
    stack = LocalStack(folder / "stack", fixed_ports=False)
    try:
        stack.start()
        host = stack.start_devhost(
            extra_env={"TELEMETRY_TEST_DIR": str(folder)},
            module="tests.telemetry_host",
        )
        # The API takes the development issuer's tokens where the stack has one.
        token = getattr(stack, "token", None)
        headers = {"Authorization": f"Bearer {token()}"} if token else {}
        with httpx.Client(
            base_url=host.base_url + "/api", timeout=30, headers=headers
        ) as http:
            yield Traced(stack, host, http, folder)
    finally:
        stack.stop()


def eventually(find: Callable[[], T | None], what: str, timeout: float = 30) -> T:
    deadline = time.monotonic() + timeout
    while True:
        found = find()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout:.0f} s")
        time.sleep(0.25)


def server_span(traced: Traced, name: str, correlation_id: str) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        return next(
            (
                s
                for s in traced.spans("http")
                if s["kind"] == "SERVER"
                and s["name"] == name
                and s["attributes"].get(CORRELATION_ID) == correlation_id
            ),
            None,
        )

    return eventually(find, f"{name} span for {correlation_id}")


def projection_spans_linked_to(
    traced: Traced, trace_id: str, span_id: str, wrote: bool = False
) -> dict[str, list[dict[str, Any]]]:
    """Per projection, its batch spans with a link to (trace_id, span_id); all four, or
    wait. With `wrote`, waits until each has one that wrote: one request's events can land
    on several partitions (an order's, its products'), and a projection's batch of events
    it has nothing to write for (a product's, for the customer view) may be exported
    before the batch holding the order."""

    def find() -> dict[str, list[dict[str, Any]]] | None:
        spans = traced.spans("triggers")
        found = {
            name: [
                s
                for s in spans
                if s["kind"] == "CONSUMER"
                and s["attributes"].get("cqrs.projection") == name
                and any(
                    link["trace_id"] == trace_id and link["span_id"] == span_id
                    for link in s["links"]
                )
            ]
            for name in PROJECTIONS
        }
        if not all(found.values()):
            return None
        if wrote and not all(
            any(s["attributes"].get("cqrs.writes") for s in spans)
            for spans in found.values()
        ):
            return None
        return found

    return eventually(find, "batch span linked to the event in every projection")


def place_order(
    http: httpx.Client, correlation_id: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    buyer, widget = customer(http), product(http, price=2.5, stock=50)
    placed = http.post(
        "/orders",
        json={
            "customerId": buyer["id"],
            "items": [{"productId": widget["id"], "quantity": 2}],
            "shippingAddress": ADDRESS,
        },
        headers={"X-Correlation-Id": correlation_id},
    )
    return accepted(placed), widget


def test_one_order_is_one_trace_from_the_request_to_every_projection(traced: Traced):
    correlation_id = unique("trace")
    placed, _ = place_order(traced.http, correlation_id)
    wait_for(traced.http, f"/orders/{placed['id']}", 1)

    server = server_span(traced, "POST /api/orders", correlation_id)
    trace_id = server["trace_id"]
    assert server["attributes"]["http.request.method"] == "POST"
    assert server["attributes"]["http.route"] == "/api/orders"
    assert server["attributes"]["http.response.status_code"] == 202
    assert server["attributes"]["cqrs.command"] == "place_order"
    assert server["parent_id"] is None

    in_trace = [s for s in traced.spans("http") if s["trace_id"] == trace_id]
    # Every span of the request carries its correlation id.
    assert all(s["attributes"].get(CORRELATION_ID) == correlation_id for s in in_trace)
    transactions = [
        s
        for s in in_trace
        if s["kind"] == "CLIENT" and s["attributes"].get("db.system.name") == "sqlite"
    ]
    command_tx = next(
        s
        for s in transactions
        if "INSERT outbox" in s["attributes"]["db.query.summary"]
    )
    assert command_tx["parent_id"] == server["span_id"]
    assert command_tx["name"] == command_tx["attributes"]["db.query.summary"]
    assert command_tx["attributes"]["db.operation.batch.size"] >= 4
    (send,) = [s for s in in_trace if s["name"] == f"send {HUB}"]
    assert send["kind"] == "PRODUCER" and send["parent_id"] == server["span_id"]
    assert send["attributes"]["messaging.system"] == "eventhubs"
    assert send["attributes"]["messaging.operation.type"] == "send"
    assert send["attributes"]["messaging.destination.name"] == HUB
    assert send["attributes"]["messaging.batch.message_count"] >= 1
    mark_sent = [
        s
        for s in transactions
        if s["attributes"]["db.query.summary"] == "UPDATE outbox"
    ]
    assert mark_sent and mark_sent[0]["parent_id"] == server["span_id"]

    linked = projection_spans_linked_to(traced, trace_id, send["span_id"], wrote=True)
    triggers = traced.spans("triggers")
    for name, spans in linked.items():
        assert any(span["attributes"]["cqrs.writes"] for span in spans), name
        for span in spans:
            assert span["name"] == f"process {HUB}"
            attributes = span["attributes"]
            assert attributes["messaging.operation.type"] == "process"
            assert attributes["messaging.consumer.group.name"]
            assert correlation_id in attributes[CORRELATION_ID].split(",")
            link = next(ln for ln in span["links"] if ln["trace_id"] == trace_id)
            assert link["attributes"][CORRELATION_ID] == correlation_id
            if {ln["trace_id"] for ln in span["links"]} == {trace_id}:
                # Every event of the batch came from this request: the span is in its trace.
                assert span["trace_id"] == trace_id
            # The batch's Cosmos DB calls are its children and carry the correlation id
            # (a batch of events the projection has nothing to write for makes none).
            children = [s for s in triggers if s["parent_id"] == span["span_id"]]
            if span["attributes"]["cqrs.writes"]:
                assert children, f"{name}: no Cosmos DB call inside the batch span"
            assert all(
                correlation_id in c["attributes"].get(CORRELATION_ID, "").split(",")
                for c in children
            )


def test_a_query_has_its_span_and_its_cosmos_calls(traced: Traced):
    buyer = customer(traced.http)
    wait_for(traced.http, f"/customers/{buyer['id']}", 1)
    correlation_id = unique("query")
    assert (
        traced.http.get(
            f"/customers/{buyer['id']}", headers={"X-Correlation-Id": correlation_id}
        ).status_code
        == 200
    )
    server = server_span(traced, "GET /api/customers/{customerId}", correlation_id)
    assert server["attributes"]["cqrs.query"]
    assert server["attributes"]["http.response.status_code"] == 200
    children = [s for s in traced.spans("http") if s["parent_id"] == server["span_id"]]
    assert len(children) >= 1 and all(
        c["trace_id"] == server["trace_id"] for c in children
    )


def test_a_command_the_relay_publishes_continues_its_trace(traced: Traced):
    correlation_id = unique("relayed")
    flag = traced.folder / "fail-publish"
    flag.touch()
    try:
        registered = traced.http.post(
            "/customers",
            json={
                "name": "Relayed",
                "email": f"{uuid.uuid4().hex[:10]}@example.com",
                "creditLimit": 10,
            },
            headers={"X-Correlation-Id": correlation_id},
        )
        assert registered.status_code == 202, registered.text
        server = server_span(traced, "POST /api/customers", correlation_id)
    finally:
        flag.unlink()
    trace_id = server["trace_id"]
    failed_send = next(
        s
        for s in traced.spans("http")
        if s["trace_id"] == trace_id and s["name"] == f"send {HUB}"
    )
    assert failed_send["status"] == "ERROR"

    def created() -> dict[str, Any] | None:
        return next(
            (
                s
                for s in traced.spans("triggers")
                if s["name"] == f"create {HUB}" and s["trace_id"] == trace_id
            ),
            None,
        )

    # The relay publishes events older than 5 s, every 10 s.
    create = eventually(created, "relay create span in the command's trace", 40)
    request_spans = {
        s["span_id"] for s in traced.spans("http") if s["trace_id"] == trace_id
    }
    assert (
        create["parent_id"] in request_spans
    )  # the context stored with the outbox row
    assert create["attributes"][CORRELATION_ID] == correlation_id
    assert create["attributes"]["messaging.operation.type"] == "create"
    relay_send = next(
        s
        for s in traced.spans("triggers")
        if s["name"] == f"send {HUB}"
        and any(ln["span_id"] == create["span_id"] for ln in s["links"])
    )
    assert relay_send["kind"] == "PRODUCER"
    # Every projection links its batch to the event's context in the original trace.
    projection_spans_linked_to(traced, trace_id, create["span_id"])


def _points(
    metrics: dict[str, list[dict[str, Any]]], name: str
) -> list[dict[str, Any]]:
    return metrics.get(name, [])


def test_every_metric_is_recorded_with_its_attributes(traced: Traced):
    http = traced.http
    correlation_id = unique("metrics")
    placed, widget = place_order(http, correlation_id)
    wait_for(http, f"/orders/{placed['id']}", 1)
    wait_for(
        http, f"/products/{widget['id']}", 1
    )  # its own projection may lag the order's
    assert http.get(f"/products/{widget['id']}").status_code == 200
    assert http.post("/orders", json={}).status_code == 400  # a rejected command
    # An event of a type no projection knows (skipped) and an unparseable one (dead-lettered).
    unknown = Event(
        event_type="LoyaltyPointsAwarded",
        aggregate_type="customer",
        aggregate_id=str(uuid.uuid4()),
        aggregate_version=1,
        partition_key="telemetry-test",
        occurred_at=datetime.now(UTC),
        correlation_id=correlation_id,
        causation_id=str(uuid.uuid4()),
        data={},
    )
    LocalEventLog(traced.stack.settings["LOCAL_EVENT_LOG_PATH"]).append(
        [
            OutgoingEvent(unknown.to_bytes(), "telemetry-test", unknown.properties()),
            OutgoingEvent(b"{not json", "telemetry-test", {}),
        ]
    )
    assert http.get("/projections").status_code == 200  # records the lag gauge

    def complete() -> dict[str, list[dict[str, Any]]] | None:
        metrics = traced.metrics()
        outcomes = {
            (p["attributes"]["projection"], p["attributes"]["outcome"])
            for p in _points(metrics, "cqrs.sync.events")
        }
        wanted = {
            (name, outcome)
            for name in PROJECTIONS
            for outcome in ("applied", "skipped", "dead_lettered")
        }
        named = all(_points(metrics, m.name) for m in METRICS)
        return metrics if named and wanted <= outcomes else None

    metrics = eventually(
        complete, "every metric (the relay and catch-up run on timers)", 40
    )
    for metric in METRICS:
        for point in _points(metrics, metric.name):
            assert set(point["attributes"]) == set(metric.attributes), (
                metric.name,
                point,
            )
    commands = {
        (
            p["attributes"]["command"],
            p["attributes"]["outcome"],
            p["attributes"]["status_code"],
        )
        for p in _points(metrics, "cqrs.commands")
    }
    assert ("place_order", "accepted", 202) in commands
    assert ("place_order", "rejected", 400) in commands
    assert ("register_customer", "accepted", 202) in commands
    durations = {
        p["attributes"]["command"]: p["count"]
        for p in _points(metrics, "cqrs.command.duration")
    }
    assert durations["place_order"] >= 2
    routes = {p["attributes"]["route"] for p in _points(metrics, "cqrs.query.duration")}
    assert {"/api/orders/{orderId}", "/api/products/{productId}"} <= routes
    published = {
        p["attributes"]["event_type"] for p in _points(metrics, "cqrs.events.published")
    }
    assert {"OrderPlaced", "CustomerRegistered", "ProductCreated"} <= published
    for name in PROJECTIONS:
        mine = [
            p
            for p in _points(metrics, "cqrs.dead_letters")
            if p["attributes"]["projection"] == name
        ]
        assert mine and mine[0]["value"] >= 1
        batches = [
            p
            for p in _points(metrics, "cqrs.sync.batch.duration")
            if p["attributes"]["projection"] == name
        ]
        assert batches and batches[0]["count"] >= 1
        freshness = [
            p
            for p in _points(metrics, "cqrs.readmodel.freshness")
            if p["attributes"]["projection"] == name
        ]
        assert freshness and 0 <= freshness[0]["value"] < 30
    lag = _points(metrics, "cqrs.sync.lag")
    assert {p["attributes"]["projection"] for p in lag} == set(PROJECTIONS)
    unsent = _points(metrics, "cqrs.outbox.unsent")
    oldest = _points(metrics, "cqrs.outbox.oldest_age")
    assert unsent and unsent[0]["value"] >= 0 and oldest[0]["value"] >= 0


def test_the_lag_gauge_agrees_with_get_projections(traced: Traced):
    """With the projections stopped, events wait: the gauge and the endpoint agree."""
    assert traced.host.triggers is not None
    traced.host.triggers.stop()
    try:
        place_order(traced.http, unique("lag"))
        time.sleep(0.5)  # let the oldest unapplied event age measurably
        body = traced.http.get("/projections").json()
        gauge = _points(traced.metrics("http"), "cqrs.sync.lag")
        assert any(p["lagSeconds"] > 0 for p in body["projections"])
        for projection in body["projections"]:
            mine = {
                p["attributes"]["partition"]: p["value"]
                for p in gauge
                if p["attributes"]["projection"] == projection["name"]
            }
            partitions = {p["partition"]: p for p in projection["partitions"]}
            assert set(mine) == set(partitions)
            assert max(mine.values()) == projection["lagSeconds"]
            for partition, seconds in mine.items():
                assert (seconds > 0) == (partitions[partition]["lagEvents"] > 0)
    finally:
        traced.host.start()
