"""Query latency against history size: 100, 1,000 and 10,000 orders of history.

Each size is a read model of its own (a database of the same Cosmos stand-in),
written fast, without HTTP: order events are built in the project's own event
shapes (checked against the events real commands emit) and applied in-process by
`sync.runner.process` with `CosmosWriter`, so they are the documents the
projections write. Each read model is served by an HTTP-only dev host of its own,
and the timed requests take turns across sizes and routes: a noisy moment on a
shared machine falls on every size alike, not on whichever size was being timed.

The history grows where the measured reads look: one customer places a third of the
orders, one product is on a fifth of the order lines, and the orders spread evenly
over the 30 days before today (the one-day query asks for yesterday, which gets a
thirtieth of them).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import os
import random
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from devtools.bench_common import (
    DeadLetterList,
    InProcessCommands,
    call_route,
    percentile,
)
from devtools.sample_data import ADDRESS

SIZES = (100, 1_000, 10_000)
DAYS = 30
CUSTOMERS = 10
PRODUCTS = 5
CANCEL_EVERY = 10  # one order in ten is cancelled afterwards (a second event)


def real_templates(root: Path) -> dict[str, Any]:
    """One event of each type the history uses, from real commands on SQLite."""
    from commands import handlers, models

    cmd = InProcessCommands(root, 4)
    customer = cmd.run(
        handlers.register_customer,
        models.RegisterCustomer(
            name="T", email="t@example.com", creditLimit=Decimal(10**6)
        ),
    )
    products = [
        cmd.run(
            handlers.create_product,
            models.CreateProduct(
                sku=f"T-{i}", name="T", price=Decimal("1.50"), stock=100
            ),
        )
        for i in range(2)
    ]
    order = cmd.run(
        handlers.place_order,
        models.PlaceOrder(
            customerId=customer["id"],
            items=[
                models.OrderLineRequest(productId=p["id"], quantity=1) for p in products
            ],
            shippingAddress=models.Address(**ADDRESS),
        ),
    )
    cmd.run(handlers.cancel_order, models.CancelOrder(reason="r"), order_id=order["id"])
    from shared import outbox

    return {e.event_type: e for e in outbox.read_range(cmd.db, 0, 100)}


def _shape(value: Any) -> Any:
    """The keys of nested dicts (and of the first element of lists): an event's shape."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return None


class HistoryEvents:
    """Builds the history's events from real ones: each event is a copy of the real
    event of its type with the ids, names, amounts, times and versions replaced, so
    fields this does not know about keep the values a command gave them."""

    def __init__(self, templates: dict[str, Any], seed: int = 7) -> None:
        from shared.events import Event

        self._event = Event
        self.templates = templates
        self.rng = random.Random(seed)
        self.position = 10**9  # far from any position the write side hands out
        self.customers = [
            {
                **self._data("CustomerRegistered")["customer"],
                "id": str(uuid.uuid4()),
                "name": f"History customer {i}",
                "email": f"history{i}-{uuid.uuid4().hex[:6]}@example.com",
                "version": 1,
                "creditLimit": Decimal(10**9),
            }
            for i in range(CUSTOMERS)
        ]
        self.products = [
            {
                **self._data("ProductCreated")["product"],
                "id": str(uuid.uuid4()),
                "sku": f"H-{uuid.uuid4().hex[:8]}",
                "name": f"History part {i}",
                "price": Decimal(325 + 100 * i) / 100,
                "stock": 10**6,
                "version": 1,
            }
            for i in range(PRODUCTS)
        ]
        self.orders = 0
        self.last_day = datetime.now(UTC).date() - timedelta(days=1)

    def _data(self, event_type: str) -> dict[str, Any]:
        return copy.deepcopy(self.templates[event_type].data)

    @property
    def heavy_customer(self) -> str:
        return self.customers[0]["id"]

    @property
    def heavy_product(self) -> str:
        return self.products[0]["id"]

    def _make(self, like: str, aggregate_id: str, version: int, key: str, data: dict):
        template = self.templates[like]
        self.position += 1
        return dataclasses.replace(
            template,
            event_id=str(uuid.uuid4()),
            aggregate_id=aggregate_id,
            aggregate_version=version,
            partition_key=key,
            occurred_at=datetime.now(UTC),
            correlation_id=str(uuid.uuid4()),
            causation_id=str(uuid.uuid4()),
            data=data,
            position=self.position,
        )

    def setup(self) -> list[Any]:
        """The customers and products the orders refer to."""
        events = []
        for c in self.customers:
            data = self._data("CustomerRegistered")
            data["customer"] = dict(c)
            events.append(self._make("CustomerRegistered", c["id"], 1, c["id"], data))
        for p in self.products:
            data = self._data("ProductCreated")
            data["product"] = dict(p)
            events.append(self._make("ProductCreated", p["id"], 1, p["id"], data))
        return events

    def _order(self, index: int) -> dict[str, Any]:
        customer = (
            self.customers[0]
            if index % 3 == 0
            else self.customers[1 + index % (CUSTOMERS - 1)]
        )
        day = self.last_day - timedelta(days=index % DAYS)
        moment = datetime.combine(day, datetime.min.time(), UTC) + timedelta(
            seconds=self.rng.randrange(86_400)
        )
        at = moment.isoformat(timespec="microseconds").replace("+00:00", "Z")
        picked = [self.products[index % PRODUCTS]]
        if self.rng.random() < 0.5:
            picked.append(self.products[(index + 1 + index // PRODUCTS) % PRODUCTS])
        data = self._data("OrderPlaced")
        line = data["order"]["items"][0]
        items = []
        for product in {p["id"]: p for p in picked}.values():
            quantity = self.rng.randint(1, 4)
            items.append(
                {
                    **line,
                    "productId": product["id"],
                    "sku": product["sku"],
                    "name": product["name"],
                    "unitPrice": product["price"],
                    "quantity": quantity,
                    "lineTotal": product["price"] * quantity,
                }
            )
        order = data["order"]
        order.update(
            id=str(uuid.uuid4()),
            customerId=customer["id"],
            status="placed",
            items=items,
            itemCount=sum(i["quantity"] for i in items),
            total=sum((i["lineTotal"] for i in items), Decimal(0)),
            shippingAddress=dict(ADDRESS),
            trackingNumber=None,
            cancellationReason=None,
            placedAt=at,
            updatedAt=at,
            version=1,
            history=[{"status": "placed", "at": at}],
        )
        if order.get("changes"):
            order["changes"] = [{**order["changes"][0], "version": 1, "at": at}]
        data["customer"] = {k: customer[k] for k in data["customer"]}
        return data

    def _cancelled(self, placed: dict[str, Any]) -> dict[str, Any]:
        """The data of the order's cancellation, from the real OrderCancelled's shape."""
        data = self._data("OrderCancelled")
        order, at = copy.deepcopy(placed["order"]), placed["order"]["placedAt"]
        cancelled = data["order"]
        order.update(
            status="cancelled",
            cancellationReason="changed mind",
            version=2,
            history=[*order["history"], {**cancelled["history"][-1], "at": at}],
        )
        if cancelled.get("changes"):
            order["changes"] = [
                *order["changes"],
                {**cancelled["changes"][-1], "version": 2, "at": at},
            ]
        return {**data, "order": order, "customer": placed["customer"]}

    def orders_until(self, total: int) -> list[Any]:
        """Order events (placed; one in ten then cancelled) up to `total` orders, in
        the order they happened: a batch then covers a day or two, as in a live shop."""
        happened = []
        while self.orders < total:
            data = self._order(self.orders)
            order = data["order"]
            happened.append((order["placedAt"], 1, "OrderPlaced", data))
            if self.orders % CANCEL_EVERY == CANCEL_EVERY - 1:
                happened.append(
                    (order["placedAt"], 2, "OrderCancelled", self._cancelled(data))
                )
            self.orders += 1
        happened.sort(key=lambda h: h[:2])
        return [
            self._make(
                kind, data["order"]["id"], version, data["order"]["customerId"], data
            )
            for _, version, kind, data in happened
        ]

    def check_shapes(self) -> None:
        """Fail loudly if the project's events changed shape since this was written."""
        built = {e.event_type: e for e in self.setup() + self.orders_until(10)}
        for kind, real in self.templates.items():
            if kind in built and _shape(built[kind].data) != _shape(real.data):
                raise RuntimeError(
                    f"bench_history builds {kind} unlike the command does: "
                    f"{_shape(built[kind].data)} != {_shape(real.data)}"
                )


def apply(events: Iterable[Any], partitions: int, batch_size: int) -> float:
    """Run the four projections over the events, in trigger-sized batches per partition,
    the projections side by side (as the host runs them); seconds taken."""
    from concurrent.futures import ThreadPoolExecutor

    from shared.cosmos import sync_container
    from sync.cosmos_writer import CosmosWriter
    from sync.projections import PROJECTIONS
    from sync.runner import Delivery, process

    streams: dict[str, list[Delivery]] = defaultdict(list)
    for event in events:
        digest = hashlib.sha256(event.partition_key.encode()).digest()
        partition = str(int.from_bytes(digest[:8], "big") % partitions)
        streams[partition].append(
            Delivery(event.to_bytes(), partition, len(streams[partition]))
        )
    batches = [
        stream[i : i + batch_size]
        for stream in streams.values()
        for i in range(0, len(stream), batch_size)
    ]
    dead = DeadLetterList()

    def run(name: str) -> None:
        for batch in batches:
            process(
                name,
                PROJECTIONS[name],
                batch,
                CosmosWriter(sync_container),
                dead,
                final_attempt=True,
                record_positions=False,  # the dev host's own positions stay as they are
            )

    started = time.perf_counter()
    with ThreadPoolExecutor(len(PROJECTIONS)) as pool:
        list(pool.map(run, PROJECTIONS))
    if dead.items:
        raise RuntimeError(f"history: dead-lettered {dead.items[:3]}")
    return time.perf_counter() - started


@dataclass(frozen=True)
class Route:
    """One measured call: its URL under /api, and the handler that serves it."""

    handler: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    route_params: dict[str, str] = field(default_factory=dict)


def routes(history: HistoryEvents) -> dict[str, Route]:
    last = history.last_day
    first = last - timedelta(days=DAYS - 1)
    customer, product = history.heavy_customer, history.heavy_product
    return {
        "GET /customers/{id}": Route(
            "get_customer", f"/customers/{customer}", {}, {"customerId": customer}
        ),
        "GET /products/{id}": Route(
            "get_product", f"/products/{product}", {}, {"productId": product}
        ),
        "GET /stats/sales 1 day": Route(
            "get_sales_stats",
            "/stats/sales",
            {"from": last.isoformat(), "to": last.isoformat()},
        ),
        "GET /stats/sales 30 days": Route(
            "get_sales_stats",
            "/stats/sales",
            {"from": first.isoformat(), "to": last.isoformat()},
        ),
    }


def time_routes(
    clients: dict[int, httpx.Client],
    measured: dict[int, dict[str, Route]],
    requests: int,
) -> dict[str, dict[int, list[float]]]:
    """`requests` GETs per route and size, sizes and routes taking turns;
    milliseconds as the client sees them."""
    for size, http in clients.items():
        for route in measured[size].values():
            for _ in range(10):  # warm-up: connections, the host's first calls
                http.get(route.path, params=route.query)
    samples: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for _ in range(requests):
        for size, http in clients.items():
            for name, route in measured[size].items():
                started = time.perf_counter()
                response = http.get(route.path, params=route.query)
                samples[name][size].append((time.perf_counter() - started) * 1000)
                if response.status_code != 200:
                    raise RuntimeError(
                        f"{name} @ {size}: {response.status_code} {response.text}"
                    )
    return {name: dict(by_size) for name, by_size in samples.items()}


def cosmos_cost(
    measured: dict[str, Route], headers: Mapping[str, str], calls: int = 20
) -> dict[str, tuple[float, float, int, int]]:
    """Per route: the time of one call and the Cosmos DB part of it (p50 ms), the
    documents the stand-in read for it and those it returned, from the route's handler called in this process. Splits a route's
    latency between the project's code and the stand-in (which has no index: a
    cross-partition query reads every document of the container)."""
    from azure.core.pipeline.transport import RequestsTransport

    original = RequestsTransport.send
    seen = {"ms": 0.0, "read": 0, "returned": 0}

    def send(transport: Any, request: Any, **kwargs: Any) -> Any:
        request.headers["x-ms-documentdb-populatequerymetrics"] = "true"
        started = time.perf_counter()
        response = original(transport, request, **kwargs)
        seen["ms"] += (time.perf_counter() - started) * 1000
        if request.headers.get("x-ms-documentdb-isquery"):
            metrics = response.headers.get("x-ms-documentdb-query-metrics", "")
            for part in metrics.split(";"):
                if part.startswith("retrievedDocumentCount="):
                    seen["read"] += int(part.partition("=")[2])
                if part.startswith("outputDocumentCount="):
                    seen["returned"] += int(part.partition("=")[2])
        elif request.method == "GET" and "/docs/" in request.url:
            seen["read"] += 1  # a point read reads its one document
            seen["returned"] += 1
        return response

    out = {}
    for name, route in measured.items():

        def handler(route: Route = route) -> None:
            response = call_route(
                route.handler, route.path, route.query, route.route_params, headers
            )
            if response.status_code != 200:
                raise RuntimeError(f"{route.path}: {response.status_code}")

        handler()  # warm-up: the client, the account, partition key ranges
        times, whole, read, returned = [], [], 0, 0
        RequestsTransport.send = send  # type: ignore[method-assign]
        try:
            for _ in range(calls):
                seen.update(ms=0.0, read=0, returned=0)
                started = time.perf_counter()
                handler()
                whole.append((time.perf_counter() - started) * 1000)
                times.append(seen["ms"])
                read, returned = seen["read"], seen["returned"]
        finally:
            RequestsTransport.send = original  # type: ignore[method-assign]
        out[name] = (percentile(whole, 50), percentile(times, 50), read, returned)
    return out


def check_figures(http: httpx.Client, history: HistoryEvents) -> None:
    """The read model holds what was written: the heavy customer's order count."""
    body = http.get(f"/customers/{history.heavy_customer}").json()
    expected = len(range(0, history.orders, 3))
    if body["orderCount"] != expected:
        raise RuntimeError(
            f"history: the heavy customer has {body['orderCount']} orders, not {expected}"
        )


def http_only_host(
    settings: Mapping[str, str], database: str, log_path: Path
) -> tuple[Any, str]:
    """A dev host serving only the HTTP functions, reading `database`; (process, base URL).
    Without the triggers, nothing in it consumes the stack's event log."""
    from devtools.dev_issuer import JWKS_ROUTE
    from devtools.processes import LOOPBACK, ManagedProcess, free_port

    port = free_port()
    env = {
        **os.environ,
        **settings,
        "COSMOS_DATABASE": database,
        # Like the stack's hosts: it publishes the development issuer's keys itself.
        "AUTH_JWKS_URI": f"http://{LOOPBACK}:{port}{JWKS_ROUTE}",
    }
    process = ManagedProcess(
        f"host-history-{database}",
        [sys.executable, "-m", "devtools.devhost", "--host", LOOPBACK]
        + ["--port", str(port), "--functions", "http"],
        log_path=log_path,
        env={**env, "PYTHONUNBUFFERED": "1"},
    )
    process.start()
    return process, f"http://{LOOPBACK}:{port}"


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def measure(
    settings: Mapping[str, str],
    log_dir: Path,
    headers: Mapping[str, str],
    sizes: tuple[int, ...] = SIZES,
    requests: int = 200,
) -> dict[str, Any]:
    """One read model per size, each behind its own HTTP-only dev host; the routes
    timed with sizes taking turns (`headers` carry the caller's token). The databases
    are dropped afterwards."""
    from devtools.dev_issuer import JWKS_ROUTE
    from devtools.devhost.settings import load_host_config
    from devtools.host_process import HOST_STATUS_PATH
    from devtools.provision import app_settings
    from shared import config, cosmos

    root = Path(__file__).resolve().parent.parent
    batch_size = load_host_config(root).max_event_batch_size
    partitions = config.topology()["eventHub"]["partitionCount"]
    with tempfile.TemporaryDirectory(prefix="bench-history-") as tmp:
        templates = real_templates(Path(tmp))
    HistoryEvents(templates).check_shapes()
    tag = uuid.uuid4().hex[:6]
    databases = {size: f"bench-history-{size}-{tag}" for size in sizes}
    histories: dict[int, HistoryEvents] = {}
    written: dict[int, float] = {}
    hosts: dict[int, tuple[Any, str]] = {}
    try:
        for size, database in databases.items():
            with app_settings({**settings, "COSMOS_DATABASE": database}):
                cosmos.ensure_containers()
                history = histories[size] = HistoryEvents(templates, seed=size)
                apply(history.setup(), partitions, batch_size)
                written[size] = apply(
                    history.orders_until(size), partitions, batch_size
                )
        for size, database in databases.items():
            hosts[size] = http_only_host(
                settings, database, log_dir / f"devhost-history-{size}.log"
            )
        for process, base_url in hosts.values():
            status = base_url + HOST_STATUS_PATH
            process.wait_until(lambda status=status: _answers(status), "answering")
        measured = {size: routes(h) for size, h in histories.items()}
        clients = {
            size: httpx.Client(
                base_url=base_url + "/api", timeout=30, headers=dict(headers)
            )
            for size, (_, base_url) in hosts.items()
        }
        try:
            for size, http in clients.items():
                check_figures(http, histories[size])
            series = time_routes(clients, measured, requests)
        finally:
            for http in clients.values():
                http.close()
        cost: dict[str, dict[int, tuple[float, float, int, int]]] = defaultdict(dict)
        for size, database in databases.items():
            jwks = hosts[size][1] + JWKS_ROUTE  # the token is checked in-process too
            with app_settings(
                {**settings, "COSMOS_DATABASE": database, "AUTH_JWKS_URI": jwks}
            ):
                for name, figures_ in cosmos_cost(measured[size], headers).items():
                    cost[name][size] = figures_
    finally:
        for process, _ in hosts.values():
            process.stop()
        for database in databases.values():
            with app_settings(settings), contextlib.suppress(Exception):
                cosmos.client().delete_database(database)
    return {
        "series": series,
        "cosmos": dict(cost),
        "written": written,
        "requests": requests,
    }


def figures(result: dict[str, Any]) -> dict[str, float]:
    rows: dict[str, float] = {}
    series = result["series"]
    for name, by_size in series.items():
        for size, samples in by_size.items():
            rows[f"p50 ms: {name} @ {size:,} orders"] = round(
                percentile(samples, 50), 1
            )
            rows[f"p99 ms: {name} @ {size:,} orders"] = round(
                percentile(samples, 99), 1
            )
        small, large = min(by_size), max(by_size)
        rows[f"p99 ratio {large:,}/{small:,}: {name}"] = round(
            percentile(by_size[large], 99) / percentile(by_size[small], 99), 2
        )
        rows[f"p50 ratio {large:,}/{small:,}: {name}"] = round(
            percentile(by_size[large], 50) / percentile(by_size[small], 50), 2
        )
    for name, by_size in result.get("cosmos", {}).items():
        for size, (whole, ms, read, returned) in by_size.items():
            at = f"{name} @ {size:,} orders"
            rows[f"in-process p50 ms, whole call: {at}"] = round(whole, 1)
            rows[f"in-process p50 ms, Cosmos part: {at}"] = round(ms, 1)
            rows[f"Cosmos documents returned: {at}"] = returned
            rows[f"Cosmos documents read by the stand-in: {at}"] = read
    return rows
