"""`make bench`: the performance figures, measured on a fresh local stack, beside a baseline.

Starts its own stack on free ports (like the tests), then measures:
- SQL statements per command type (in-process, the real handlers on SQLite);
- command latency p50/p99 per route over HTTP;
- time from a 202 to the order being readable (p50/p99);
- Cosmos DB requests per projected event, per projection (the runner's own counts,
  read from the dev host log after a burst);
- query latency p50/p99 per route, and rebuild throughput.

Figures print beside `devtools/bench_baseline.json`; `--save-baseline` replaces it.
Latencies depend on the machine: compare runs on one machine, not across machines.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import httpx

from devtools.sample_data import ADDRESS
from devtools.stack import LocalStack

BASELINE = Path(__file__).with_name("bench_baseline.json")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def timed(
    samples: dict[str, list[float]],
    name: str,
    call: Callable[[], httpx.Response],
    expect: int,
) -> dict:
    started = time.perf_counter()
    response = call()
    samples[name].append((time.perf_counter() - started) * 1000)
    if response.status_code != expect:
        raise RuntimeError(f"{name}: {response.status_code} {response.text}")
    return response.json() if response.content else {}


def statements_per_command(root: Path) -> dict[str, float]:
    """Run each command once in-process and count the SQL statements it executed (publish included)."""
    from commands import handlers, models
    from commands.execution import execute
    from shared.http import Request
    from shared.publisher import LocalLogPublisher
    from shared.sql.db import Database, _sqlite_connect
    from shared.sql.migrate import apply_migrations

    db = Database(_sqlite_connect(str(root / "bench.db")), "sqlite")
    apply_migrations(db)
    publisher = LocalLogPublisher(str(root / "bench-events.db"), 4)
    counts: dict[str, float] = {}

    def run(handler, body, **route) -> dict:
        before = db.statements
        request = Request("POST", {}, {}, {}, "bench", body=body)
        response = execute(
            request,
            handler.__name__,
            lambda tx, ctx: handler(tx, ctx, body, **route),
            db=db,
            events_to=publisher,
        )
        counts[f"statements: {handler.__name__}"] = db.statements - before
        return response.body

    c = run(
        handlers.register_customer,
        models.RegisterCustomer(
            name="A", email=f"{uuid.uuid4()}@x.io", creditLimit=Decimal(10_000)
        ),
    )
    p = run(
        handlers.create_product,
        models.CreateProduct(
            sku=uuid.uuid4().hex[:10], name="P", price=Decimal(2), stock=100
        ),
    )
    q = run(
        handlers.create_product,
        models.CreateProduct(
            sku=uuid.uuid4().hex[:10], name="Q", price=Decimal(3), stock=100
        ),
    )
    run(handlers.change_customer, models.ChangeCustomer(name="B"), customer_id=c["id"])
    run(
        handlers.change_product,
        models.ChangeProduct(price=Decimal(4)),
        product_id=p["id"],
    )
    run(handlers.adjust_stock, models.AdjustStock(delta=5), product_id=p["id"])
    o = run(
        handlers.place_order,
        models.PlaceOrder(
            customerId=c["id"],
            items=[models.OrderLineRequest(productId=p["id"], quantity=1)],
            shippingAddress=models.Address(**ADDRESS),
        ),
    )
    run(
        handlers.add_item,
        models.AddItem(productId=q["id"], quantity=1),
        order_id=o["id"],
    )
    run(handlers.remove_item, models.NoBody(), order_id=o["id"], product_id=q["id"])
    run(handlers.change_shipping_address, models.Address(**ADDRESS), order_id=o["id"])
    run(handlers.ship_order, models.ShipOrder(trackingNumber="T"), order_id=o["id"])
    run(handlers.deliver_order, models.NoBody(), order_id=o["id"])
    o2 = run(
        handlers.place_order,
        models.PlaceOrder(
            customerId=c["id"],
            items=[
                models.OrderLineRequest(productId=p["id"], quantity=1),
                models.OrderLineRequest(productId=q["id"], quantity=1),
            ],
            shippingAddress=models.Address(**ADDRESS),
        ),
    )
    counts["statements: place_order (2 lines)"] = counts.pop("statements: place_order")
    run(handlers.cancel_order, models.CancelOrder(reason="r"), order_id=o2["id"])
    return counts


def http_figures(http: httpx.Client, orders: int) -> tuple[dict[str, float], list[str]]:
    samples: dict[str, list[float]] = defaultdict(list)
    customers = [
        timed(
            samples,
            "POST /customers",
            lambda i=i: http.post(
                "/customers",
                json={
                    "name": f"Bench {i}",
                    "email": f"{uuid.uuid4().hex}@bench.io",
                    "creditLimit": 1_000_000,
                },
            ),
            202,
        )
        for i in range(20)
    ]
    products = [
        timed(
            samples,
            "POST /products",
            lambda: http.post(
                "/products",
                json={
                    "sku": uuid.uuid4().hex[:12],
                    "name": "Bench product",
                    "price": 9.99,
                    "stock": 100_000,
                },
            ),
            202,
        )
        for _ in range(20)
    ]
    visible: list[float] = []
    ids = []
    for i in range(orders):
        body = {
            "customerId": customers[i % 20]["id"],
            "shippingAddress": ADDRESS,
            "items": [
                {"productId": products[(i + k) % 20]["id"], "quantity": 1 + k}
                for k in range(2)
            ],
        }
        placed = timed(
            samples,
            "POST /orders",
            lambda body=body: http.post("/orders", json=body),
            202,
        )
        accepted_at = time.perf_counter()
        while http.get(f"/orders/{placed['id']}").status_code != 200:
            time.sleep(0.005)
        visible.append((time.perf_counter() - accepted_at) * 1000)
        ids.append(placed["id"])
    for order_id in ids[: orders // 2]:
        timed(
            samples,
            "POST /orders/{id}/ship",
            lambda o=order_id: http.post(
                f"/orders/{o}/ship", json={"trackingNumber": "T"}
            ),
            202,
        )
    for order_id in ids[: orders // 2]:
        timed(
            samples,
            "GET /orders/{id}",
            lambda o=order_id: http.get(f"/orders/{o}"),
            200,
        )
    figures = {}
    for name, values in samples.items():
        figures[f"p50 ms: {name}"] = round(percentile(values, 50), 1)
        figures[f"p99 ms: {name}"] = round(percentile(values, 99), 1)
    figures["p50 ms: 202 -> readable order"] = round(percentile(visible, 50), 1)
    figures["p99 ms: 202 -> readable order"] = round(percentile(visible, 99), 1)
    return figures, ids


LOG_LINE = re.compile(
    r"\] (?P<projection>[\w-]+): (?P<events>\d+) event\(s\) -> \d+ write\(s\), "
    r"(?P<requests>\d+) Cosmos request\(s\)"
)


def cosmos_requests_per_event(log: Path) -> dict[str, float]:
    events: dict[str, int] = defaultdict(int)
    requests: dict[str, int] = defaultdict(int)
    for match in LOG_LINE.finditer(log.read_text(errors="replace")):
        events[match["projection"]] += int(match["events"])
        requests[match["projection"]] += int(match["requests"])
    return {
        f"Cosmos requests/event: {p}": round(requests[p] / events[p], 2)
        for p in sorted(events)
        if events[p]
    }


def rebuild_figures(stack: LocalStack) -> dict[str, float]:
    from devtools.provision import app_settings
    from sync.rebuild import rebuild

    with app_settings(stack.settings):
        result = rebuild("order-detail")
    return {
        "rebuild events/s: order-detail": round(
            result["events"] / max(result["seconds"], 1e-6), 1
        )
    }


def measure(orders: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        figures.update(statements_per_command(Path(tmp)))
        with LocalStack(Path(tmp) / "stack", fixed_ports=False) as stack:
            host = stack.start_devhost()
            try:
                with httpx.Client(base_url=host.base_url + "/api", timeout=30) as http:
                    more, _ = http_figures(http, orders)
                    figures.update(more)
                    time.sleep(
                        2
                    )  # let every projection drain before reading its counts
                    figures.update(
                        cosmos_requests_per_event(Path(stack.state_dir) / "devhost.log")
                    )
                    figures.update(rebuild_figures(stack))
            finally:
                host.stop()
    return figures


def report(figures: dict[str, float], baseline: dict[str, float]) -> str:
    width = max(len(k) for k in figures) + 2
    lines = [f"{'figure':<{width}}{'baseline':>12}{'now':>12}{'change':>10}"]
    for name, value in figures.items():
        base = baseline.get(name)
        change = f"{(value - base) / base * 100:+.0f}%" if base else ""
        lines.append(
            f"{name:<{width}}{base if base is not None else '-':>12}{value:>12}{change:>10}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Measure and compare with the baseline."
    )
    parser.add_argument("--orders", type=int, default=100)
    parser.add_argument("--save-baseline", action="store_true")
    args = parser.parse_args(argv)
    figures = measure(args.orders)
    baseline = json.loads(BASELINE.read_text()) if BASELINE.exists() else {}
    print(report(figures, baseline))
    if args.save_baseline:
        BASELINE.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"baseline saved to {BASELINE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
