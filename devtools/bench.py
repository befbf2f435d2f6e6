"""`make bench`: the performance figures, measured on a fresh local stack, beside a baseline.

Starts its own stack on free ports (like the tests) and measures, by section
(`--only statements,commands,sync,load,queries`; all by default):

- statements: SQL statements per command type (in-process, the real handlers on SQLite);
- commands: command and query latency p50/p99 over HTTP, time from a 202 to the
  order being readable, Cosmos requests per projected event (the runner's counts in
  the dev host log) and rebuild throughput;
- sync: the project's sync against a seed-style synchronizer on one event stream
  (devtools/bench_sync.py);
- queries: query latency against 100, 1,000 and 10,000 orders of history, each a
  read model of its own behind its own HTTP-only dev host (devtools/bench_history.py);
- load: freshness and command latency under an open-loop load of 20, 50 and 100
  commands/s (devtools/bench_load.py).

Sync and queries run before the stack's dev host starts, so nothing else of the
bench uses the stand-in or the CPU meanwhile. `make bench` takes about 4-5 minutes
on a 2-core machine.

Figures print beside `devtools/bench_baseline.json`, then the issue's targets, met
or missed; the plot goes to `.local/bench/bench-<timestamp>.png` with the figures
beside it as JSON. `--save-baseline` replaces the baseline (merges into it with
`--only`). Latencies depend on the machine and on what else runs on it: compare
runs on one machine, and rerun a section whose figures look noisy.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
import uuid
import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from devtools import bench_history, bench_load, bench_plot, bench_sync
from devtools.bench_common import CpuPressure, batch_log_totals, percentile
from devtools.sample_data import ADDRESS
from devtools.stack import LocalStack

BASELINE = Path(__file__).with_name("bench_baseline.json")


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
    from commands.functions import run_command as execute
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


def cosmos_requests_per_event(log: Path) -> dict[str, float]:
    totals = batch_log_totals(log.read_text(errors="replace"))
    return {
        f"Cosmos requests/event: {p}": round(t["requests"] / t["events"], 2)
        for p, t in sorted(totals.items())
        if t["events"]
    }


def rebuild_figures(stack: LocalStack) -> dict[str, float]:
    from devtools.provision import app_settings
    from sync.rebuild import rebuild

    with app_settings(stack.settings):
        started = time.perf_counter()  # finer than the result's seconds (10 ms steps)
        result = rebuild("order-detail")
        seconds = time.perf_counter() - started
    return {"rebuild events/s: order-detail": round(result["events"] / seconds, 1)}


SECTIONS = ("statements", "commands", "sync", "load", "queries")
OUT_DIR = Path(__file__).resolve().parent.parent / ".local" / "bench"


def measure(args: argparse.Namespace) -> tuple[dict[str, float], dict[str, Any]]:
    """Run the chosen sections; (figures for the table, raw results for plot and notes)."""
    sections = args.only
    figures: dict[str, float] = {}
    raw: dict[str, Any] = {"pressure": {}}
    with tempfile.TemporaryDirectory() as tmp:
        if "statements" in sections:
            figures.update(statements_per_command(Path(tmp)))
            _mark(raw, "statements: SQL per command (in-process)", figures)
        if not {"commands", "sync", "load", "queries"} & set(sections):
            return figures, raw
        with LocalStack(Path(tmp) / "stack", fixed_ports=False) as stack:
            # Every route wants a token: the development issuer's, for an Orders.Admin.
            headers = {"Authorization": f"Bearer {stack.token()}"}
            # Sync and queries first, before the stack's dev host starts: nothing else
            # then uses the stand-in or the CPU.
            if "sync" in sections:
                _progress("sync: both synchronizers over one event stream")
                pressure = CpuPressure()
                raw["sync"] = bench_sync.measure(stack.settings, args.sync_events)
                raw["pressure"]["sync"] = pressure.share()
                figures.update(bench_sync.figures(raw["sync"]))
                _mark(
                    raw, "sync: the project against a seed-style synchronizer", figures
                )
            if "queries" in sections:
                _progress(f"queries: histories of {args.history_sizes} orders")
                pressure = CpuPressure()
                raw["queries"] = bench_history.measure(
                    stack.settings,
                    Path(stack.state_dir),
                    headers,
                    tuple(args.history_sizes),
                    args.query_requests,
                )
                raw["pressure"]["queries"] = pressure.share()
                figures.update(bench_history.figures(raw["queries"]))
                _mark(raw, "queries: latency against history size", figures)
            if not {"commands", "load"} & set(sections):
                return figures, raw
            host = stack.start_devhost()
            log = Path(stack.state_dir) / "devhost.log"
            try:
                with httpx.Client(
                    base_url=host.base_url + "/api", timeout=30, headers=headers
                ) as http:
                    if "commands" in sections:
                        _progress("commands: latencies over HTTP, rebuild")
                        pressure = CpuPressure()
                        more, _ = http_figures(http, args.orders)
                        raw["pressure"]["commands"] = pressure.share()
                        figures.update(more)
                        time.sleep(2)  # let every projection drain before counting
                        figures.update(cosmos_requests_per_event(log))
                        figures.update(rebuild_figures(stack))
                        _mark(raw, "commands: one at a time over HTTP", figures)
                    if "load" in sections:
                        _progress(f"load: {args.load_levels} commands/s")
                        raw["load"] = bench_load.measure(
                            host.base_url + "/api",
                            http,
                            tuple(args.load_levels),
                            args.load_seconds,
                            host_log=log,
                            settings=stack.settings,
                            probe=args.probe,
                            processes=_processes(stack, host),
                        )
                        figures.update(bench_load.figures(raw["load"]))
                        _mark(raw, "load: open loop through the dev host", figures)
            finally:
                host.stop()
    return figures, raw


def _mark(raw: dict[str, Any], title: str, figures: dict[str, float]) -> None:
    """Remember where a section's figures end, for headings in the table."""
    raw.setdefault("headings", []).append((len(figures), title))


def _processes(stack: LocalStack, host: Any) -> dict[str, int]:
    """The stack's processes whose CPU time the load reports (where the time goes)."""
    named = {
        "dev host http": getattr(host, "http", None),
        "dev host triggers": getattr(host, "triggers", None),
        "cosmos stand-in": stack.service("cosmos"),
    }
    return {name: p.pid for name, p in named.items() if p is not None and p.pid}


def _progress(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def report(
    figures: dict[str, float],
    baseline: dict[str, float],
    headings: Sequence[tuple[int, str]] = (),
) -> str:
    """The table; `headings` (figures so far, title) name the section each row is in."""
    width = max(len(k) for k in figures) + 2
    lines = [f"{'figure':<{width}}{'baseline':>12}{'now':>12}{'change':>10}"]
    starts, start = {}, 0
    for end, title in headings:
        starts[start] = title
        start = end
    for index, (name, value) in enumerate(figures.items()):
        if index in starts:
            lines.append(f"-- {starts[index]}")
        base = baseline.get(name)
        change = f"{(value - base) / base * 100:+.0f}%" if base else ""
        lines.append(
            f"{name:<{width}}{base if base is not None else '-':>12}{value:>12}{change:>10}"
        )
    return "\n".join(lines)


TARGETS = (
    # (what the issue asks, figure, comparison, threshold)
    (
        "sync >= 5x the seed-style events/s",
        "sync speed-up: project / seed-style",
        ">=",
        5,
    ),
    *(
        (
            f"sync <= 1.1 Cosmos requests/event: {name}",
            f"sync Cosmos requests/event: project {name}",
            "<=",
            1.1,
        )
        for name in ("order-detail", "customer-view", "product-view", "sales-stats")
    ),
    *(
        (
            f"p99 at 10,000 orders <= 1.5x p99 at 100: {route}",
            f"p99 ratio 10,000/100: {route}",
            "<=",
            1.5,
        )
        for route in (
            "GET /customers/{id}",
            "GET /products/{id}",
            "GET /stats/sales 1 day",
            "GET /stats/sales 30 days",
        )
    ),
    *(
        (
            f"command p99 < 25 ms while projections run @ {rate}/s",
            f"load p99 ms: command @ {rate}/s",
            "<",
            25,
        )
        for rate in bench_load.LEVELS
    ),
    (
        "202 -> visible p99 < 1 s @ 50/s",
        "load p99 ms: 202 -> visible @ 50/s",
        "<",
        1000,
    ),
)


def targets(figures: dict[str, float]) -> str:
    lines = ["Targets (issue 10):"]
    for what, name, op, threshold in TARGETS:
        if name not in figures:
            continue
        value = figures[name]
        met = {
            ">=": value >= threshold,
            "<=": value <= threshold,
            "<": value < threshold,
        }[op] and value >= 0
        lines.append(
            f"  {'met   ' if met else 'MISSED'} {what}: {value} (target {op} {threshold})"
        )
    return "\n".join(lines)


def notes(raw: dict[str, Any]) -> str:
    """What the table cannot say in a number."""
    lines = []
    shares = {
        section: f"{section} {100 * share:.0f}%"
        for section, share in raw.get("pressure", {}).items()
        if share is not None
    }
    if shares:
        lines.append(
            "CPU pressure (share of the time some task waited for a CPU; other work on "
            "the machine shows here): "
            + ", ".join(shares.values())
            + " (load: per level in the table)"
        )
    if "sync" in raw:
        s = raw["sync"]
        lines.append(
            f"sync: {s['events']} events in {s['batches']} trigger batches of up to "
            f"{s['batch_size']}; {s['documents']} documents; documents that differ between "
            f"the two synchronizers: {s['differing']}"
            + (f" ({', '.join(s['differences'])})" if s.get("differences") else "")
        )
    if "load" in raw:
        for rate, statuses in bench_load.status_counts(raw["load"]).items():
            if statuses:
                lines.append(
                    f"load @ {rate}/s: non-2xx commands by status {dict(statuses)}"
                )
    if "queries" in raw:
        written = ", ".join(
            f"{size:,} orders in {seconds:.1f} s"
            for size, seconds in raw["queries"]["written"].items()
        )
        lines.append(
            f"queries: history written in-process ({written}); "
            f"{raw['queries']['requests']} requests per route and size"
        )
    return "\n".join(lines)


def _list(kind: type) -> Callable[[str], list]:
    return lambda text: [kind(part) for part in text.split(",") if part]


def _environment_of_a_function_app() -> None:
    """Blank the proxy and CA-bundle variables, for this process and the stack it starts.

    A Function App's environment has none; a development machine behind a TLS-inspecting
    proxy often has some, and then every Cosmos DB request scans the whole environment
    (a quarter of a projection's client CPU). Every service of the local stack is on the
    loopback interface, so none of them is used here."""
    from shared.cosmos import REQUESTS_ENVIRONMENT

    for name in list(os.environ):
        if name.lower().endswith(REQUESTS_ENVIRONMENT):
            os.environ[name] = ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Measure and compare with the baseline."
    )
    parser.add_argument(
        "--only",
        type=_list(str),
        default=list(SECTIONS),
        help=f"sections to run, comma-separated: {','.join(SECTIONS)} (default: all)",
    )
    parser.add_argument("--orders", type=int, default=100)
    parser.add_argument("--sync-events", type=int, default=3000)
    parser.add_argument(
        "--load-levels", type=_list(int), default=list(bench_load.LEVELS)
    )
    parser.add_argument("--load-seconds", type=float, default=bench_load.SECONDS)
    parser.add_argument(
        "--probe",
        choices=("cosmos", "api"),
        default="cosmos",
        help="how the load watches for visibility (devtools/bench_load.py)",
    )
    parser.add_argument(
        "--history-sizes", type=_list(int), default=list(bench_history.SIZES)
    )
    # Per route and history size. A p99 is then the 10th slowest of 1,000, not the 4th of
    # 400, which a few passing stalls of the shared machine decided.
    parser.add_argument("--query-requests", type=int, default=1000)
    parser.add_argument("--save-baseline", action="store_true")
    args = parser.parse_args(argv)
    unknown = set(args.only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {sorted(unknown)}; choose from {SECTIONS}")
    warnings.filterwarnings("ignore", message="Unverified HTTPS request")
    # The SDK warns when a dropped scratch database's endpoint stops answering its
    # background health check: expected here, and not a figure.
    logging.getLogger("azure.cosmos").setLevel(logging.ERROR)
    _environment_of_a_function_app()

    started = time.monotonic()
    load_before = os.getloadavg()[0]
    figures, raw = measure(args)
    baseline = json.loads(BASELINE.read_text()) if BASELINE.exists() else {}
    print(report(figures, baseline, raw.get("headings", [])))
    print()
    print(targets(figures))
    if text := notes(raw):
        print(text)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    if "load" in raw or "queries" in raw:
        png = bench_plot.plot(
            raw.get("queries"),
            raw.get("load"),
            OUT_DIR / f"bench-{stamp}.png",
            title=f"make bench, {time.strftime('%Y-%m-%d %H:%M')}",
        )
        print(f"plot: {png}")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / f"bench-{stamp}.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(
        f"took {time.monotonic() - started:.0f} s; load average (1 min) "
        f"{load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end "
        f"on {os.cpu_count()} CPUs"
    )
    if args.save_baseline:
        partial = set(args.only) != set(SECTIONS)
        saved = {**baseline, **figures} if partial else figures
        BASELINE.write_text(json.dumps(saved, indent=2) + "\n")
        print(f"baseline {'updated' if partial else 'saved'}: {BASELINE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
