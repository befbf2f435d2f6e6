"""Properties: any delivery of a history — duplicates, reordering, batch splits, replays after a
crash, crashes between the writes of a batch — projects to the same documents as one
in-order delivery, and every aggregate equals a recomputation from the write side.

Histories are real: a state machine (hypothesis.stateful) runs commands through the real
command handlers on SQLite, reads their events back from the outbox, and interleaves
them with hostile deliveries to every projection.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import tempfile
import uuid
from datetime import date
from decimal import Decimal
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from commands import handlers, models
from commands.functions import run_command as execute
from devtools.sample_data import ADDRESS
from queries import aggregates
from shared import outbox
from shared.errors import ProblemError
from shared.events import Event
from shared.http import Request
from shared.money import to_cents
from shared.publisher import LocalLogPublisher
from shared.read_model import AGGREGATE_ID
from shared.sql.db import Database, _sqlite_connect
from shared.sql.migrate import apply_migrations
from sync.projections import PROJECTIONS
from sync.runner import Delivery, process
from tests.memory_store import DeadLetterList, MemoryStore

PARTITIONS = 4

operation = st.one_of(
    st.tuples(st.just("customer"), st.integers(0, 10**6)),
    st.tuples(st.just("rename"), st.integers(0, 50), st.integers(0, 10**6)),
    st.tuples(st.just("product"), st.integers(1, 5000), st.integers(0, 30)),
    st.tuples(st.just("reprice"), st.integers(0, 50), st.integers(1, 5000)),
    st.tuples(st.just("stock"), st.integers(0, 50), st.integers(-5, 10)),
    st.tuples(
        st.just("order"),
        st.integers(0, 50),
        st.lists(
            st.tuples(st.integers(0, 50), st.integers(1, 4)), min_size=1, max_size=3
        ),
    ),
    st.tuples(
        st.just("add"), st.integers(0, 50), st.integers(0, 50), st.integers(1, 3)
    ),
    st.tuples(st.just("remove"), st.integers(0, 50), st.integers(0, 3)),
    st.tuples(st.sampled_from(["ship", "deliver", "cancel"]), st.integers(0, 50)),
)


class History:
    """Runs commands through the real handlers and remembers the ids they created."""

    def __init__(self, root: Path) -> None:
        self.db = Database(_sqlite_connect(str(root / "orders.db")), "sqlite")
        apply_migrations(self.db)
        self.publisher = LocalLogPublisher(str(root / "events.db"), PARTITIONS)
        self.customers: list[str] = []
        self.products: list[str] = []
        self.orders: list[str] = []

    def run(self, handler, body, **route) -> dict | None:
        request = Request("POST", {}, {}, {}, str(uuid.uuid4()), body=body)
        try:
            response = execute(
                request,
                handler.__name__,
                lambda tx, ctx: handler(tx, ctx, body, **route),
                db=self.db,
                events_to=self.publisher,
            )
        except ProblemError:
            return (
                None  # refused by a rule: no events, which is part of the history too
            )
        return response.body

    def pick(self, items: list[str], index: int) -> str | None:
        return items[index % len(items)] if items else None

    def apply(self, op: tuple) -> None:
        kind = op[0]
        if kind == "customer":
            if body := self.run(
                handlers.register_customer,
                models.RegisterCustomer(
                    name=f"Customer {op[1]}",
                    email=f"c{op[1]}-{uuid.uuid4().hex[:6]}@example.com",
                    creditLimit=Decimal(500),
                ),
            ):
                self.customers.append(body["id"])
        elif kind == "rename" and self.customers:
            self.run(
                handlers.change_customer,
                models.ChangeCustomer(name=f"Renamed {op[2]}"),
                customer_id=self.pick(self.customers, op[1]),
            )
        elif kind == "product":
            if body := self.run(
                handlers.create_product,
                models.CreateProduct(
                    sku=f"SKU-{uuid.uuid4().hex[:8]}",
                    name=f"Product {op[1]}",
                    price=Decimal(op[1]) / 100,
                    stock=op[2],
                ),
            ):
                self.products.append(body["id"])
        elif kind == "reprice" and self.products:
            self.run(
                handlers.change_product,
                models.ChangeProduct(price=Decimal(op[2]) / 100),
                product_id=self.pick(self.products, op[1]),
            )
        elif kind == "stock" and self.products and op[2]:
            self.run(
                handlers.adjust_stock,
                models.AdjustStock(delta=op[2]),
                product_id=self.pick(self.products, op[1]),
            )
        elif kind == "order" and self.customers and self.products:
            items = [
                models.OrderLineRequest(
                    productId=self.pick(self.products, p), quantity=q
                )
                for p, q in op[2]
            ]
            if body := self.run(
                handlers.place_order,
                models.PlaceOrder(
                    customerId=self.pick(self.customers, op[1]),
                    items=items,
                    shippingAddress=models.Address(**ADDRESS),
                ),
            ):
                self.orders.append(body["id"])
        elif kind == "add" and self.orders and self.products:
            self.run(
                handlers.add_item,
                models.AddItem(
                    productId=self.pick(self.products, op[2]), quantity=op[3]
                ),
                order_id=self.pick(self.orders, op[1]),
            )
        elif kind == "remove" and self.orders:
            order_id = self.pick(self.orders, op[1])
            self.run(
                handlers.remove_item,
                models.NoBody(),
                order_id=order_id,
                product_id=self.pick(self.products, op[2]),
            )
        elif kind in ("ship", "deliver", "cancel") and self.orders:
            handler = {
                "ship": handlers.ship_order,
                "deliver": handlers.deliver_order,
                "cancel": handlers.cancel_order,
            }[kind]
            body = {
                "ship": models.ShipOrder(trackingNumber="TRACK-1"),
                "deliver": models.NoBody(),
                "cancel": models.CancelOrder(reason="changed mind"),
            }[kind]
            self.run(handler, body, order_id=self.pick(self.orders, op[1]))

    def events(self) -> list[Event]:
        return outbox.read_range(self.db, 0, 100_000)


def partition_of(event: Event) -> str:
    digest = hashlib.sha256(event.partition_key.encode()).digest()
    return str(int.from_bytes(digest[:8], "big") % PARTITIONS)


def deliveries_of(events: list[Event]) -> list[Delivery]:
    sequence: dict[str, int] = {}
    out = []
    for event in events:
        partition = partition_of(event)
        sequence[partition] = sequence.get(partition, -1) + 1
        out.append(Delivery(event.to_bytes(), partition, sequence[partition]))
    return out


def project(name: str, batches: list[list[Delivery]]) -> MemoryStore:
    store, dead = MemoryStore(), DeadLetterList()
    for batch in batches:
        process(name, PROJECTIONS[name], batch, store, dead, final_attempt=True)
    assert dead.items == []
    return store


def test_in_order_projection_matches_the_write_side(tmp_path):
    history = History(tmp_path)
    for op in [
        ("customer", 1),
        ("product", 250, 20),
        ("product", 100, 20),
        ("order", 0, [(0, 2), (1, 1)]),
        ("add", 0, 1, 2),
        ("rename", 0, 7),
        ("remove", 0, 0),
        ("ship", 0),
        ("order", 0, [(0, 1)]),
        ("cancel", 1),
    ]:
        history.apply(op)
    deliveries = deliveries_of(history.events())
    orders = project("order-detail", [[d] for d in deliveries])
    first = orders.docs[("orders", history.orders[0], history.orders[0])]
    assert first["status"] == "shipped"
    assert first["customer"]["name"] == "Renamed 7"
    assert [(i["quantity"], i["unitPrice"]) for i in first["order"]["items"]] == [
        (3, Decimal("1.00"))
    ]
    assert first["total"] == Decimal("3.00")
    sales = project("product-view", [[d] for d in deliveries])
    product_0 = history.products[0]
    contributions = [
        d
        for (c, pk, _), d in sales.docs.items()
        if c == "product-sales" and pk == product_0 and d["kind"] == "contribution"
    ]
    # order 1: line removed (0 units); order 2: cancelled (not counted)
    assert sorted((d["units"], d["counted"]) for d in contributions) == [
        (0, False),
        (1, False),
    ]
    product_doc = sales.docs[("products", product_0, product_0)]
    assert product_doc["stock"] == 20  # everything reserved was released again


class CrashingStore(MemoryStore):
    """Crashes part-way through its next batch when told to: the writes of some groups
    done, the rest not."""

    def __init__(self) -> None:
        super().__init__()
        self.crash_after: int | None = None

    def execute_all(self, writes):
        cut, self.crash_after = self.crash_after, None
        if cut is None:
            return super().execute_all(writes)
        cut = min(cut, len(writes))
        super().execute_all(writes[:cut])
        raise ConnectionError(f"crashed after {cut} of {len(writes)} writes")


def totals_of(store: MemoryStore, container: str) -> dict[str, dict]:
    return {
        pk: doc
        for (name, pk, doc_id), doc in store.docs.items()
        if name == container and doc_id == AGGREGATE_ID
    }


def expected_from_write_side(db: Database) -> dict[str, dict]:
    """Every aggregate recomputed from the SQL write model."""
    orders = db.run(
        lambda tx: tx.all(
            "SELECT id, customer_id, status, total_cents, placed_at FROM orders"
        )
    )
    lines = db.run(
        lambda tx: tx.all(
            "SELECT order_id, product_id, quantity, unit_price_cents FROM order_lines"
        )
    )
    status_of = {o[0]: o[2] for o in orders}
    customers: dict[str, dict] = {}
    days: dict[str, dict] = {}
    products: dict[str, dict] = {}
    for order_id, customer_id, status, total, placed_at in orders:
        c = customers.setdefault(
            customer_id, {"orders": 0, "open": 0, "spent": 0, "statuses": {}}
        )
        c["orders"] += 1
        c["open"] += status in ("placed", "shipped")
        c["spent"] += 0 if status == "cancelled" else total
        c["statuses"][status] = c["statuses"].get(status, 0) + 1
        d = days.setdefault(
            str(placed_at)[:10], {"orders": 0, "cancelled": 0, "revenue": 0}
        )
        d["orders"] += 1
        d["cancelled"] += status == "cancelled"
        d["revenue"] += 0 if status == "cancelled" else total
    for order_id, product_id, quantity, price in lines:
        if status_of[order_id] != "cancelled":
            p = products.setdefault(product_id, {"units": 0, "revenue": 0})
            p["units"] += quantity
            p["revenue"] += quantity * price
    return {"customers": customers, "days": days, "products": products}


def check_aggregates(history: History, stores: dict[str, MemoryStore]) -> None:
    """Every aggregate the queries read equals its recomputation from the write side."""
    expected = expected_from_write_side(history.db)

    customers = totals_of(stores["customer-view"], "customer-orders")
    for customer_id in history.customers:
        want = expected["customers"].get(customer_id)
        got = aggregates.customer_totals(customers.get(customer_id))
        assert got["orderCount"] == (want["orders"] if want else 0)
        assert got["openOrderCount"] == (want["open"] if want else 0)
        assert to_cents(got["totalSpent"]) == (want["spent"] if want else 0)
        for status, count in got["ordersByStatus"].items():
            assert count == (want["statuses"].get(status, 0) if want else 0)

    products = totals_of(stores["product-view"], "product-sales")
    for product_id in history.products:
        want = expected["products"].get(product_id, {"units": 0, "revenue": 0})
        got = aggregates.product_sales(products.get(product_id))
        assert (got["unitsSold"], to_cents(got["revenue"])) == (
            want["units"],
            want["revenue"],
        )

    totals = list(totals_of(stores["sales-stats"], "daily-sales").values())
    assert all(doc["dayShard"].startswith(doc["day"]) for doc in totals)
    for day, want in expected["days"].items():
        stats = aggregates.sales_stats(
            totals, date.fromisoformat(day), date.fromisoformat(day)
        )
        [got] = stats["days"]
        assert (got["orders"], got["cancelled"], to_cents(got["revenue"])) == (
            want["orders"],
            want["cancelled"],
            want["revenue"],
        )
        top = {p["productId"]: p["units"] for p in stats["topProducts"]}
        assert all(units > 0 for units in top.values())


class HostileDelivery(RuleBasedStateMachine):
    """Commands run through the real handlers, interleaved with deliveries of their events
    to every projection as a crashing, retrying, unordered transport delivers them:
    batches of any size, publish races (reordering, even within a partition), partitions
    interleaved, redelivery after a crash before the checkpoint, lone duplicates, and
    crashes between the writes of a batch (the batch comes again).

    Whenever every published event has been delivered, each projection holds the
    documents one in-order delivery gives, and every aggregate equals its recomputation
    from the write side; the run ends by delivering what is left and checking again.
    """

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="history-"))
        self.stores = {name: CrashingStore() for name in PROJECTIONS}
        # The same events, each delivered once in publish order: what every store must match.
        self.in_order = {name: MemoryStore() for name in PROJECTIONS}
        self.dead = DeadLetterList()
        self.sequence: dict[str, int] = {}
        self.published = 0
        self.pending: list[Delivery] = []  # published, not yet delivered
        self.delivered: list[Delivery] = []  # delivered at least once, in that order

    @initialize(seed=st.integers(0, 2**32))
    def start(self, seed: int) -> None:
        rng = random.Random(seed)
        # Ids decide partitions: draw them from the seed so a failing example replays exactly.
        self.ids = mock.patch(
            "uuid.uuid4", lambda: uuid.UUID(int=rng.getrandbits(128), version=4)
        )
        self.ids.start()
        self.history = History(self.root)
        for op in [
            ("customer", 1),
            ("customer", 2),
            ("product", 250, 20),
            ("product", 999, 5),
        ]:
            self.command(op)

    @rule(op=operation)
    def command(self, op: tuple) -> None:
        self.history.apply(op)
        for event in self.history.events()[self.published :]:
            partition = partition_of(event)
            self.sequence[partition] = self.sequence.get(partition, -1) + 1
            delivery = Delivery(event.to_bytes(), partition, self.sequence[partition])
            self.published += 1
            self.pending.append(delivery)
            for name, store in self.in_order.items():
                process(
                    name,
                    PROJECTIONS[name],
                    [delivery],
                    store,
                    self.dead,
                    final_attempt=True,
                )

    def _process(self, batch: list[Delivery]) -> None:
        for name, store in self.stores.items():
            process(
                name, PROJECTIONS[name], batch, store, self.dead, final_attempt=True
            )

    def _deliver(self, batch: list[Delivery]) -> None:
        self._process(batch)
        self.pending = [d for d in self.pending if not any(d is b for b in batch)]
        self.delivered += batch

    @precondition(lambda self: self.pending)
    @rule(size=st.integers(1, 5))
    def deliver(self, size: int) -> None:
        """The next batch as published."""
        self._deliver(self.pending[:size])

    @precondition(lambda self: self.pending)
    @rule(partition=st.integers(0, PARTITIONS - 1), size=st.integers(1, 5))
    def deliver_partition(self, partition: int, size: int) -> None:
        """The next batch of one partition: Event Hubs order, partitions interleaved."""
        batch = [d for d in self.pending if d.partition == str(partition)][:size]
        if batch:
            self._deliver(batch)

    @precondition(lambda self: len(self.pending) > 1)
    @rule(data=st.data())
    def reorder(self, data: st.DataObject) -> None:
        """Publish races: what is not delivered yet arrives in any order."""
        self.pending = data.draw(st.permutations(self.pending), label="pending")

    @precondition(lambda self: self.delivered)
    @rule(start=st.integers(0, 10**6), length=st.integers(1, 6))
    def redeliver(self, start: int, length: int) -> None:
        """A crash before the checkpoint: a stretch already delivered comes again."""
        start %= len(self.delivered)
        self._process(self.delivered[start : start + length])

    @precondition(lambda self: self.delivered)
    @rule(index=st.integers(0, 10**6))
    def duplicate(self, index: int) -> None:
        self._process([self.delivered[index % len(self.delivered)]])

    @precondition(lambda self: self.pending)
    @rule(size=st.integers(1, 5), cut=st.integers(0, 12))
    def crash_mid_batch(self, size: int, cut: int) -> None:
        """The store fails after `cut` writes of the batch: no checkpoint, so the batch
        stays pending and comes again."""
        batch = self.pending[:size]
        for name, store in self.stores.items():
            store.crash_after = cut
            with pytest.raises(ConnectionError):
                process(
                    name, PROJECTIONS[name], batch, store, self.dead, final_attempt=True
                )

    @precondition(lambda self: self.pending)
    @rule(size=st.integers(1, 5))
    def catch_up(self, size: int) -> None:
        """Everything pending, in batches of `size`."""
        while self.pending:
            self._deliver(self.pending[:size])

    @invariant()
    def caught_up_projections_match(self) -> None:
        if self.pending:
            return
        assert self.dead.items == []
        for name, store in self.stores.items():
            expected = self.in_order[name].documents()
            actual = store.documents()
            differing = {
                k: (actual.get(k), expected.get(k))
                for k in expected.keys() | actual.keys()
                if actual.get(k) != expected.get(k)
            }
            assert not differing, f"{name}: {differing}"
        check_aggregates(self.history, self.stores)

    def teardown(self) -> None:
        try:
            if hasattr(self, "history"):
                self.catch_up(5)
                self.caught_up_projections_match()
        finally:
            if hasattr(self, "ids"):
                self.ids.stop()
            shutil.rmtree(self.root, ignore_errors=True)


HostileDelivery.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_any_delivery_converges_to_the_write_side = HostileDelivery.TestCase
