"""Sync throughput: the project's projections against a seed-style synchronizer.

Both consume the same event stream on the same Cosmos stand-in, each on a fresh
database, and must end with the same documents:

- the stream: ~3,000 events from real commands (customers, products, orders and
  their whole lifecycle, renames, stock changes) run in-process through the real
  handlers on SQLite and published to a local event log, read back per partition
  with the sequence numbers the hub gives them;
- the project: `sync.runner.process` with `CosmosWriter`, one call per batch as the
  Event Hubs trigger delivers them (per partition, up to `maxEventBatchSize` = 100
  events from host.json), for each of the four projections;
- the seed-style synchronizer (`SeedStyleSync`, the comparison baseline, not the
  project's code): per event, one at a time, `read_item` each target document,
  change it, `upsert_item` — what a naive Event Hub function does.

Both run one batch or one event at a time, projection after projection, so the
figures compare the way each writes, not how many host threads run them (the host
runs the projections and partitions side by side, on top of this).
"""

from __future__ import annotations

import random
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any
from unittest import mock

from azure.cosmos import ContainerProxy
from azure.cosmos.exceptions import CosmosResourceNotFoundError

from devtools.bench_common import (
    DeadLetterList,
    InProcessCommands,
    TransportCount,
    scratch_database,
)
from devtools.sample_data import ADDRESS

REPO_ROOT = Path(__file__).resolve().parent.parent


def generate_stream(root: Path, target_events: int, seed: int = 10) -> list[Any]:
    """Run a realistic mix of commands until the outbox holds `target_events` events;
    return them as stored in the local event log (partition, sequence number, body)."""
    from shared import config

    shop = _Shop(root, config.topology()["eventHub"]["partitionCount"], seed)
    for i in range(40):
        shop.register(i)
    # A few customers place most orders, as in any shop.
    shop.weights = [1 / (1 + i) for i in range(len(shop.customers))]
    for i in range(20):
        shop.create_product(i)
    while shop.cmd.event_count() < target_events:
        shop.step(shop.rng.random())
    log = shop.cmd.publisher.log
    return [e for p in log.partition_ids for e in log.read(p, None, 10**9)]


class _Shop:
    """The stream's commands: what each does, and the ids they created."""

    def __init__(self, root: Path, partitions: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.cmd = InProcessCommands(root, partitions)
        self.customers: list[str] = []
        self.products: list[str] = []
        self.placed: list[dict[str, Any]] = []  # open orders: {"id", "lines": set}
        self.shipped: list[str] = []
        self.weights: list[float] = []  # of the customers placing orders
        # (roll below, needs, command): the first whose roll and need are met runs.
        self.moves: list[tuple[float, Callable[[], bool], Callable[[], None]]] = [
            (0.57, _always, self.ship),
            (0.65, lambda: bool(self.shipped), self.deliver),
            (0.70, _always, self.cancel),
            (0.76, _always, self.add_item),
            (0.79, _always, self.remove_item),
            (0.82, _always, self.change_address),
            (0.90, _always, self.adjust_stock),
            (0.94, _always, self.change_product),
            (0.97, _always, self.rename),
        ]

    def step(self, roll: float) -> None:
        if roll < 0.45 or not self.placed:
            return self.place()
        for below, needs, move in self.moves:
            if roll < below and needs():
                return move()
        self.register(len(self.customers))
        self.weights.append(1 / len(self.customers))

    def _customer(self) -> str:
        return self.rng.choices(self.customers, self.weights[: len(self.customers)])[0]

    def register(self, i: int) -> None:
        from commands import handlers, models

        body = self.cmd.run(
            handlers.register_customer,
            models.RegisterCustomer(
                name=f"Customer {i}",
                email=f"c{i}-{uuid.uuid4().hex[:8]}@example.com",
                creditLimit=Decimal(10**9),
            ),
        )
        self.customers.append(body["id"])

    def create_product(self, i: int) -> None:
        from commands import handlers, models

        body = self.cmd.run(
            handlers.create_product,
            models.CreateProduct(
                sku=f"SKU-{uuid.uuid4().hex[:10]}",
                name=f"Part {i}",
                price=Decimal(150 + 37 * i) / 100,
                stock=10**6,
            ),
        )
        self.products.append(body["id"])

    def place(self) -> None:
        from commands import handlers, models

        lines = self.rng.sample(self.products, self.rng.randint(1, 3))
        body = self.cmd.run(
            handlers.place_order,
            models.PlaceOrder(
                customerId=self._customer(),
                items=[
                    models.OrderLineRequest(
                        productId=p, quantity=self.rng.randint(1, 4)
                    )
                    for p in lines
                ],
                shippingAddress=models.Address(**ADDRESS),
            ),
        )
        self.placed.append({"id": body["id"], "lines": set(lines)})

    def ship(self) -> None:
        from commands import handlers, models

        order = self.placed.pop(self.rng.randrange(len(self.placed)))
        self.cmd.run(
            handlers.ship_order,
            models.ShipOrder(trackingNumber=f"1Z{self.rng.randint(0, 10**8)}"),
            order_id=order["id"],
        )
        self.shipped.append(order["id"])

    def deliver(self) -> None:
        from commands import handlers, models

        self.cmd.run(
            handlers.deliver_order,
            models.NoBody(),
            order_id=self.shipped.pop(self.rng.randrange(len(self.shipped))),
        )

    def cancel(self) -> None:
        from commands import handlers, models

        order = self.placed.pop(self.rng.randrange(len(self.placed)))
        self.cmd.run(
            handlers.cancel_order,
            models.CancelOrder(reason="changed mind"),
            order_id=order["id"],
        )

    def add_item(self) -> None:
        from commands import handlers, models

        order = self.rng.choice(self.placed)
        product = self.rng.choice(self.products)
        if product not in order["lines"]:
            self.cmd.run(
                handlers.add_item,
                models.AddItem(productId=product, quantity=self.rng.randint(1, 3)),
                order_id=order["id"],
            )
            order["lines"].add(product)

    def remove_item(self) -> None:
        from commands import handlers, models

        order = self.rng.choice(self.placed)
        if len(order["lines"]) > 1:
            product = self.rng.choice(sorted(order["lines"]))
            self.cmd.run(
                handlers.remove_item,
                models.NoBody(),
                order_id=order["id"],
                product_id=product,
            )
            order["lines"].discard(product)

    def change_address(self) -> None:
        from commands import handlers, models

        self.cmd.run(
            handlers.change_shipping_address,
            models.Address(
                **{**ADDRESS, "street": f"{self.rng.randint(1, 999)} Elm St"}
            ),
            order_id=self.rng.choice(self.placed)["id"],
        )

    def adjust_stock(self) -> None:
        from commands import handlers, models

        self.cmd.run(
            handlers.adjust_stock,
            models.AdjustStock(delta=self.rng.randint(1, 50)),
            product_id=self.rng.choice(self.products),
        )

    def change_product(self) -> None:
        from commands import handlers, models

        self.cmd.run(
            handlers.change_product,
            models.ChangeProduct(price=Decimal(self.rng.randint(100, 5000)) / 100),
            product_id=self.rng.choice(self.products),
        )

    def rename(self) -> None:
        from commands import handlers, models

        self.cmd.run(
            handlers.change_customer,
            models.ChangeCustomer(name=f"Renamed {self.rng.randint(0, 10**6)}"),
            customer_id=self._customer(),
        )


def _always() -> bool:
    return True


def trigger_batches(stored: list[Any], batch_size: int) -> list[list[Any]]:
    """Deliveries as the trigger hands them over: per partition, in order, up to
    `batch_size` events a batch; partitions take turns (the host reads them side by side)."""
    from sync.runner import Delivery

    by_partition: dict[str, list[Delivery]] = defaultdict(list)
    for e in stored:
        by_partition[e.partition_id].append(
            Delivery(
                e.body, e.partition_id, e.sequence_number, e.offset, e.enqueued_time
            )
        )
    chunks = {
        p: [ds[i : i + batch_size] for i in range(0, len(ds), batch_size)]
        for p, ds in sorted(by_partition.items())
    }
    batches = []
    for round_ in range(max(len(c) for c in chunks.values())):
        batches += [c[round_] for c in chunks.values() if round_ < len(c)]
    return batches


class SeedStyleSync:
    """THE COMPARISON BASELINE, not the project's sync: how a naive Event Hub function
    keeps these views. Per event, one at a time: for each document the event changes,
    `read_item` it, change it, `upsert_item` it. A rename queries the customer's order
    documents, then upserts each one.

    What goes into each document comes from the projections' pure plans, so both
    synchronizers write the same documents and only the way they write differs. It
    is not exact under redelivery (no etags), which the benchmark's in-order stream
    never asks of it.
    """

    def __init__(self, containers: Callable[[str], ContainerProxy]) -> None:
        self._containers = containers
        self.requests = 0

    def apply(self, plan: Callable[[Any], list[Any]], body: bytes) -> None:
        from shared.events import Event
        from sync.writes import Counted, FanOut

        for write in plan(Event.from_bytes(body)):
            if isinstance(write, Counted):
                self._counted(write)
            elif isinstance(write, FanOut):
                self._fan_out(write)
            else:
                self._upsert(write)

    def _read(self, container: str, doc_id: str, pk: str) -> dict[str, Any] | None:
        self.requests += 1
        try:
            return self._containers(container).read_item(doc_id, partition_key=pk)
        except CosmosResourceNotFoundError:
            return None

    def _write(self, container: str, document: dict[str, Any]) -> None:
        from shared.encoding import to_jsonable

        self.requests += 1
        body = {k: v for k, v in document.items() if not k.startswith("_")}
        self._containers(container).upsert_item(to_jsonable(body))

    def _upsert(self, write: Any) -> None:
        stored = self._read(write.container, write.id, write.partition_key)
        if stored is not None and stored.get(write.guard, -1) >= write.version:
            return
        if stored is None:
            self._write(write.container, write.document())
        else:
            self._write(
                write.container, {**stored, **write.fields, write.guard: write.version}
            )

    def _counted(self, write: Any) -> None:
        """A per-order contribution and its partition's totals: two reads, two upserts."""
        from shared.read_model import AGGREGATE_ID
        from sync.cosmos_writer import pk_field
        from sync.writes import aggregate_after

        stored = self._read(write.container, write.id, write.partition_key)
        if stored is not None and stored.get(write.guard, -1) >= write.version:
            return
        totals = self._read(write.container, AGGREGATE_ID, write.partition_key)
        self._write(write.container, write.document())
        self._write(
            write.container,
            aggregate_after(
                totals,
                [(stored, write)],
                pk_field(write.container),
                write.partition_key,
            ),
        )

    def _fan_out(self, write: Any) -> None:
        self.requests += 1
        rows = list(
            self._containers(write.container).query_items(
                f"SELECT * FROM c WHERE c.{write.match_field} = @value",
                parameters=[{"name": "@value", "value": write.match_value}],
                enable_cross_partition_query=True,
            )
        )
        for stored in rows:
            if stored.get(write.guard, -1) < write.version:
                self._write(
                    write.container,
                    {**stored, **write.fields, write.guard: write.version},
                )


def _warm_up(containers: Callable[[str], ContainerProxy]) -> None:
    """The client's first requests (account, collections, partition key ranges) are
    the same for both synchronizers and are not what is compared."""
    from shared.cosmos import container_specs

    for name in container_specs():
        try:
            containers(name).read_item("warm-up", partition_key="warm-up")
        except CosmosResourceNotFoundError:
            pass


def run_project(batches: list[list[Any]]) -> dict[str, Any]:
    """The project's sync over the batches, projection after projection."""
    from shared.cosmos import sync_container
    from sync.cosmos_writer import CosmosWriter
    from sync.projections import PROJECTIONS
    from sync.runner import process

    _warm_up(sync_container)
    dead = DeadLetterList()
    per_projection: dict[str, dict[str, float]] = {}
    # Where order-detail's time goes: a rename's fan-out to the customer's orders.
    fan_out = {"seconds": 0.0, "requests": 0, "renames": 0}
    unwrapped = CosmosWriter._fan_out

    def timed_fan_out(writer: CosmosWriter, write: Any) -> None:
        requests, began = writer.requests, time.perf_counter()
        try:
            unwrapped(writer, write)
        finally:
            fan_out["seconds"] += time.perf_counter() - began
            fan_out["requests"] += writer.requests - requests
            fan_out["renames"] += 1

    with (
        TransportCount() as sent,
        mock.patch.object(CosmosWriter, "_fan_out", timed_fan_out),
    ):
        started = time.perf_counter()
        for name, plan in PROJECTIONS.items():
            began, requests, events = time.perf_counter(), 0, 0
            for batch in batches:
                # One writer per batch, as the Event Hub function makes one per invocation.
                result = process(
                    name,
                    plan,
                    batch,
                    CosmosWriter(sync_container),
                    dead,
                    final_attempt=True,
                )
                requests += result.requests
                events += result.applied
            per_projection[name] = {
                "requests": requests,
                "events": events,
                "seconds": time.perf_counter() - began,
            }
        seconds = time.perf_counter() - started
    if dead.items:
        raise RuntimeError(f"the project's sync dead-lettered events: {dead.items[:3]}")
    return {
        "seconds": seconds,
        "requests": sum(p["requests"] for p in per_projection.values()),
        "http": sent.count,
        "projections": per_projection,
        "fan_out": fan_out,
    }


def run_seed_style(batches: list[list[Any]]) -> dict[str, Any]:
    """The seed-style synchronizer over the same deliveries, one event at a time."""
    from shared.cosmos import sync_container
    from sync.projections import PROJECTIONS

    _warm_up(sync_container)
    per_projection: dict[str, dict[str, float]] = {}
    with TransportCount() as sent:
        started = time.perf_counter()
        for name, plan in PROJECTIONS.items():
            began, seed = time.perf_counter(), SeedStyleSync(sync_container)
            events = 0
            for batch in batches:
                for delivery in batch:
                    seed.apply(plan, delivery.body)
                    events += 1
            per_projection[name] = {
                "requests": seed.requests,
                "events": events,
                "seconds": time.perf_counter() - began,
            }
        seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "requests": sum(p["requests"] for p in per_projection.values()),
        "http": sent.count,
        "projections": per_projection,
    }


def read_model_snapshot() -> dict[tuple[str, str, str], dict[str, Any]]:
    """Every document of the read model but the projections' recorded positions (the
    seed-style synchronizer keeps none), without Cosmos DB's system fields."""
    from shared.cosmos import container_specs, sync_container
    from sync.cosmos_writer import pk_field

    documents = {}
    for name in container_specs():
        field = pk_field(name)
        for doc in sync_container(name).query_items(
            "SELECT * FROM c", enable_cross_partition_query=True
        ):
            if doc.get("kind") != "position":
                documents[(name, str(doc.get(field)), doc["id"])] = {
                    k: v for k, v in doc.items() if not k.startswith("_")
                }
    return documents


def measure(settings: Mapping[str, str], target_events: int = 3000) -> dict[str, Any]:
    """Generate the stream, run both synchronizers on fresh databases, compare."""
    from devtools.devhost.settings import load_host_config

    batch_size = load_host_config(REPO_ROOT).max_event_batch_size
    tag = uuid.uuid4().hex[:6]
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp:
        stored = generate_stream(Path(tmp), target_events)
    batches = trigger_batches(stored, batch_size)
    with scratch_database(settings, f"bench-sync-project-{tag}"):
        project = run_project(batches)
        project_docs = read_model_snapshot()
    with scratch_database(settings, f"bench-sync-seed-{tag}"):
        seed = run_seed_style(batches)
        seed_docs = read_model_snapshot()
    differences: Counter = Counter()
    for key in project_docs.keys() | seed_docs.keys():
        mine, theirs = project_docs.get(key), seed_docs.get(key)
        if mine == theirs:
            continue
        if mine is None or theirs is None:
            differences[f"{key[0]}: only one has {key[2]}"] += 1
            continue
        for name in mine.keys() | theirs.keys():
            if mine.get(name) != theirs.get(name):
                differences[f"{key[0]}.{name}"] += 1
    return {
        "events": len(stored),
        "batches": len(batches),
        "batch_size": batch_size,
        "project": project,
        "seed": seed,
        "documents": len(project_docs),
        "differing": sum(
            project_docs.get(k) != seed_docs.get(k)
            for k in project_docs.keys() | seed_docs.keys()
        ),
        "differences": [f"{what} x{n}" for what, n in sorted(differences.items())],
    }


def figures(result: dict[str, Any]) -> dict[str, float]:
    """The bench table's rows."""
    events = result["events"]
    project, seed = result["project"], result["seed"]
    rate_project = events / project["seconds"]
    rate_seed = events / seed["seconds"]
    rows = {
        "sync events in the stream": events,
        "sync events/s: project": round(rate_project, 1),
        "sync events/s: seed-style": round(rate_seed, 1),
        "sync speed-up: project / seed-style": round(rate_project / rate_seed, 2),
        "sync Cosmos requests/event, 4 projections: project": round(
            project["requests"] / events, 2
        ),
        "sync Cosmos requests/event, 4 projections: seed-style": round(
            seed["requests"] / events, 2
        ),
        "sync HTTP requests/event, 4 projections: project": round(
            project["http"] / events, 2
        ),
        "sync HTTP requests/event, 4 projections: seed-style": round(
            seed["http"] / events, 2
        ),
    }
    for who, run in (("project", project), ("seed-style", seed)):
        for name, p in run["projections"].items():
            rows[f"sync Cosmos requests/event: {who} {name}"] = round(
                p["requests"] / max(p["events"], 1), 2
            )
    for who, run in (("project", project), ("seed-style", seed)):
        for name, p in run["projections"].items():
            rows[f"sync events/s of one projection: {who} {name}"] = round(
                p["events"] / p["seconds"], 1
            )
    fan_out, order_detail = project["fan_out"], project["projections"]["order-detail"]
    rows["sync order-detail: % of its time in rename fan-outs (project)"] = round(
        100 * fan_out["seconds"] / order_detail["seconds"], 1
    )
    rows["sync order-detail: Cosmos requests in rename fan-outs (project)"] = fan_out[
        "requests"
    ]
    rows["sync documents differing (project vs seed-style)"] = result["differing"]
    return rows
