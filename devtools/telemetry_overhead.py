"""What telemetry costs a command: `python -m devtools.telemetry_overhead [--orders 300]`.

Starts a local stack on free ports and, one after the other, a dev host with no exporter,
with the OTLP JSON file exporter (`make run`'s), and with the OTLP/HTTP exporter sending
to a receiver in this process; each places the same number of orders sequentially after a
warm-up, and the client-side latency of POST /api/orders is printed per configuration.
The first configuration is what Azure runs without Application Insights: the hooks only.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import timeit
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from devtools.processes import free_port
from devtools.sample_data import ADDRESS
from devtools.stack import LocalStack


class _Sink(BaseHTTPRequestHandler):
    """An OTLP/HTTP endpoint that accepts and drops everything."""

    def do_POST(self) -> None:  # the http.server API names it so
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def _place_orders(
    base_url: str, count: int, warm_up: int, headers: dict[str, str]
) -> list[float]:
    with httpx.Client(base_url=base_url + "/api", timeout=30, headers=headers) as http:
        buyer = http.post(
            "/customers",
            json={
                "name": "Bench",
                "email": f"bench-{time.time_ns()}@example.com",
                "creditLimit": 10_000_000,
            },
        ).json()["id"]
        widget = http.post(
            "/products",
            json={
                "sku": f"BENCH-{time.time_ns()}",
                "name": "Widget",
                "price": 1,
                "stock": 1_000_000,
            },
        ).json()["id"]
        body = {
            "customerId": buyer,
            "items": [{"productId": widget, "quantity": 1}],
            "shippingAddress": ADDRESS,
        }
        latencies = []
        for index in range(warm_up + count):
            started = time.perf_counter()
            response = http.post("/orders", json=body)
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 202:
                raise SystemExit(
                    f"POST /orders: {response.status_code} {response.text}"
                )
            if index >= warm_up:
                latencies.append(elapsed)
        return latencies


def _summary(latencies: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "mean": statistics.fmean(latencies),
        "p50": cuts[49],
        "p95": cuts[94],
        "p99": cuts[98],
    }


def disabled_hook_cost() -> float:
    """Nanoseconds the HTTP hook adds per call when no exporter is configured."""
    from shared import telemetry

    assert not telemetry.enabled()

    def handle(spec: Any, handler: Any, req: Any) -> None:
        return None

    loops = 200_000
    direct = timeit.timeit(lambda: handle(None, None, None), number=loops)
    hooked = timeit.timeit(
        lambda: telemetry.serve_http(handle, None, None, None), number=loops
    )
    return (hooked - direct) / loops * 1e9


def traced_command_cost(loops: int = 3000) -> tuple[float, float]:
    """Microseconds of telemetry work per command in-process, off and with the SDK on
    (spans and metrics handed to an exporter that drops them), for the spans and metrics
    a place_order makes: the HTTP span, two transactions (7 and 1 statements), one
    send of two events. Unlike the latencies above this is not blurred by the machine's
    other load (CPU time)."""
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from opentelemetry.sdk.metrics.export import (
        MetricExporter,
        MetricExportResult,
        PeriodicExportingMetricReader,
    )
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    from shared import telemetry
    from shared.events import Event

    class DropSpans(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    class DropMetrics(MetricExporter):
        def __init__(self) -> None:
            super().__init__()

        def export(self, data: Any, timeout_millis: float = 0, **kwargs: Any) -> Any:
            return MetricExportResult.SUCCESS

        def force_flush(self, timeout_millis: float = 0) -> bool:
            return True

        def shutdown(self, timeout_millis: float = 0, **kwargs: Any) -> None:
            pass

    spec = SimpleNamespace(name="place_order", path="orders", method="POST")
    req = SimpleNamespace(
        method="POST", url="http://127.0.0.1:7071/api/orders", headers={}
    )
    db = SimpleNamespace(dialect="sqlite")
    statements = [
        "SELECT id FROM customers WHERE id = ?",
        "UPDATE products SET stock = stock - ? WHERE id = ? AND stock >= ?",
        "UPDATE customers SET open_orders_cents = ? WHERE id = ?",
        "INSERT INTO orders (id) VALUES (?)",
        "INSERT INTO order_lines (order_id) VALUES (?)",
        "INSERT INTO outbox (event_id) VALUES (?) RETURNING position",
        "INSERT INTO outbox (event_id) VALUES (?) RETURNING position",
    ]
    events = [
        Event("OrderPlaced", "order", "o", 1, "c", datetime.now(UTC), "bench", "x", {}),
        Event("ProductStockReserved", "product", "p", 2, "p", datetime.now(UTC), "bench", "x", {}),
    ]  # fmt: skip

    @telemetry.sql_transaction
    def run(db: Any, work: list[str]) -> None:
        for statement in work:
            telemetry.sql_statement(statement)
        telemetry.trace_context()

    def handle(spec: Any, handler: Any, req: Any) -> Any:
        telemetry.correlate("bench")
        run(db, statements)
        with telemetry.publishing(events):
            for event in events:
                telemetry.message_properties(event)
        run(db, statements[:1])
        return SimpleNamespace(status_code=202)

    def handler() -> None: ...

    handler.__module__ = "commands.functions"

    def per_command() -> float:
        # CPU time of this thread's work, so the machine's other load does not count.
        started = time.thread_time()
        for _ in range(loops):
            telemetry.serve_http(handle, spec, handler, req)
        return (time.thread_time() - started) / loops * 1e6

    off = per_command()
    telemetry.install(
        [BatchSpanProcessor(DropSpans())],
        [PeriodicExportingMetricReader(DropMetrics(), export_interval_millis=60_000)],
    )
    per_command()  # warm-up: instruments and attribute sets are created once
    on = per_command()
    return off, on


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.telemetry_overhead",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument(
        "--orders", type=int, default=300, help="orders per configuration"
    )
    parser.add_argument("--warm-up", type=int, default=30)
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="configurations are run in turn this many times",
    )
    args = parser.parse_args(argv)

    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as state:
        configurations = {
            "no exporter": {},
            "file exporter (make run)": {
                "TELEMETRY_DIR": str(Path(state) / "telemetry")
            },
            "OTLP/HTTP exporter": {
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink.server_address[1]}"
            },
        }
        results: dict[str, list[float]] = {name: [] for name in configurations}
        with LocalStack(Path(state) / "stack", fixed_ports=False) as stack:
            # The API takes the development issuer's tokens where the stack has one.
            token = getattr(stack, "token", None)
            headers = {"Authorization": f"Bearer {token()}"} if token else {}
            for _ in range(args.rounds):
                for name, env in configurations.items():
                    host = stack.start_devhost(free_port(), env)
                    try:
                        results[name] += _place_orders(
                            host.base_url, args.orders, args.warm_up, headers
                        )
                    finally:
                        host.stop()
    sink.shutdown()
    print(
        f"POST /api/orders, client-side latency over {args.rounds} x {args.orders} sequential orders (ms)"
    )
    print(f"{'configuration':<28}{'mean':>8}{'p50':>8}{'p95':>8}{'p99':>8}")
    baseline = None
    for name, latencies in results.items():
        s = _summary(latencies)
        baseline = baseline or s
        delta = s["p50"] - baseline["p50"]
        print(
            f"{name:<28}{s['mean']:>8.2f}{s['p50']:>8.2f}{s['p95']:>8.2f}{s['p99']:>8.2f}"
            + (f"   p50 {delta:+.2f} ms" if s is not baseline else "")
        )
    print(f"HTTP hook with telemetry off: {disabled_hook_cost():.0f} ns per request")
    off, on = traced_command_cost()
    print(
        f"telemetry work per command, in-process: {off:.1f} us off, {on:.1f} us with "
        "the SDK on (spans and metrics of one place_order)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
