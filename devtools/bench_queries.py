"""Query latency and Cosmos requests per query route, on a local stack of its own.

    .venv/bin/python -m devtools.bench_queries [--requests 200] [--orders 300]

Starts Azurite, the Cosmos stand-in and the dev host on free ports (temporary state),
places orders through the command routes, waits for the projections, then:
- latency: `--requests` sequential GETs per route over one keep-alive connection,
  p50/p99 in milliseconds as the client sees them (HTTP + host + Cosmos);
- Cosmos requests: the same handler called in this process with the SDK's transport
  counted (the stand-in answers a cross-partition query in one request; Azure adds
  a query-plan request and one per physical partition).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import httpx

from devtools.sample_data import ADDRESS
from devtools.stack import LocalStack


def _post(http: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = http.post(path, json=body)
    if response.status_code != 202:
        raise RuntimeError(f"POST {path}: {response.status_code} {response.text}")
    return response.json()


def seed(http: httpx.Client, orders: int) -> dict[str, Any]:
    """Ten customers (one with a third of the orders), five products, `orders` orders."""
    tag = uuid.uuid4().hex[:6]
    customers = [
        _post(
            http,
            "/customers",
            {
                "name": f"Bench {tag} {i}",
                "email": f"b{i}-{tag}@example.com",
                "creditLimit": 10**8,
            },
        )["id"]
        for i in range(10)
    ]
    products = [
        _post(
            http,
            "/products",
            {
                "sku": f"B-{tag}-{i}",
                "name": f"Bench part {i}",
                "price": 3.25 + i,
                "stock": 10**6,
            },
        )["id"]
        for i in range(5)
    ]
    placed = []
    for i in range(orders):
        who = customers[0] if i % 3 == 0 else customers[1 + i % 9]
        lines = [{"productId": products[i % 5], "quantity": 1 + i % 4}]
        order = _post(
            http,
            "/orders",
            {"customerId": who, "items": lines, "shippingAddress": ADDRESS},
        )
        if i % 7 == 0:
            _post(http, f"/orders/{order['id']}/cancel", {"reason": "bench"})
        placed.append(order["id"])
    return {"tag": tag, "customers": customers, "products": products, "orders": placed}


def settle(http: httpx.Client, timeout: float = 120.0) -> None:
    """Wait until every projection has caught up (so one measurement does not spill into
    the next)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = http.get("/projections")
        if response.status_code == 200 and all(
            p["lagEvents"] == 0 for p in response.json()["projections"]
        ):
            return
        time.sleep(0.2)
    raise RuntimeError("projections did not catch up")


def routes(
    data: dict[str, Any], http: httpx.Client
) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, path, query) per measured call; the route name is the handler's."""
    heavy, product, order = data["customers"][0], data["products"][0], data["orders"][0]
    today = datetime.now(UTC).date()
    page = http.get(f"/customers/{heavy}/orders", params={"pageSize": 20}).json()
    across = http.get("/orders", params={"pageSize": 20}).json()
    measured = [
        ("get_order", f"/orders/{order}", {}),
        ("get_customer", f"/customers/{heavy}", {}),
        ("list_customer_orders p1", f"/customers/{heavy}/orders", {"pageSize": 20}),
        (
            "list_customer_orders p2",
            f"/customers/{heavy}/orders",
            {"pageSize": 20, "continuationToken": page["continuationToken"]},
        ),
        ("search_orders customerId+q", "/orders", {"customerId": heavy, "q": "part 3"}),
        ("search_orders all p1", "/orders", {"pageSize": 20}),
        (
            "search_orders all p2",
            "/orders",
            {"pageSize": 20, "continuationToken": across["continuationToken"]},
        ),
        ("search_orders q+status", "/orders", {"q": "part 2", "status": "placed"}),
        ("get_product", f"/products/{product}", {}),
        (
            "get_sales_stats 30d",
            "/stats/sales",
            {"from": (today - timedelta(days=29)).isoformat(), "to": today.isoformat()},
        ),
    ]
    # Second pages exist only when there is more than one page of data.
    return [m for m in measured if m[2].get("continuationToken", "") is not None]


def latency(
    http: httpx.Client, path: str, query: dict[str, Any], count: int
) -> tuple[float, float]:
    for _ in range(10):  # warm-up
        http.get(path, params=query)
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        response = http.get(path, params=query)
        samples.append((time.perf_counter() - start) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path}: {response.status_code} {response.text}")
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[49], cuts[98]


def cosmos_requests(
    settings: dict[str, str], headers: dict[str, str]
) -> Callable[[str, str, dict[str, Any]], int]:
    """A function counting the Cosmos HTTP requests one in-process call of a route makes."""
    os.environ.update(settings)
    from azure.core.pipeline.transport import RequestsTransport

    from devtools.bench_common import call_route, http_functions
    from shared.http import ROUTES

    http_functions()  # imports the app, which declares ROUTES
    specs = {spec.name: spec for spec in ROUTES}
    original = RequestsTransport.send
    sent = {"count": 0}

    def counting_send(self: Any, request: Any, **kwargs: Any) -> Any:
        sent["count"] += 1
        return original(self, request, **kwargs)

    def count(label: str, path: str, query: dict[str, Any]) -> int:
        spec = specs[label.split()[0]]
        route_params = {
            part.strip("{}"): value
            for part, value in zip(
                spec.path.split("/"), path.strip("/").split("/"), strict=True
            )
            if part.startswith("{")
        }
        text_query = {name: str(value) for name, value in query.items()}

        def call() -> None:
            response = call_route(spec.name, path, text_query, route_params, headers)
            if response.status_code != 200:
                raise RuntimeError(f"{label}: {response.status_code}")

        call()  # warm-up: client, account and partition key range reads
        sent["count"] = 0
        with mock.patch.object(RequestsTransport, "send", counting_send):
            call()
        return sent["count"]

    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--requests", type=int, default=200, help="requests per route (default 200)"
    )
    parser.add_argument(
        "--orders", type=int, default=300, help="orders to place first (default 300)"
    )
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message="Unverified HTTPS request")

    with (
        tempfile.TemporaryDirectory(prefix="bench-") as state,
        LocalStack(Path(state), fixed_ports=False) as stack,
    ):
        host = stack.start_devhost()
        headers = {"Authorization": f"Bearer {stack.token()}"}
        with httpx.Client(
            base_url=host.base_url + "/api", timeout=30, headers=headers
        ) as http:
            started = time.monotonic()
            data = seed(http, args.orders)
            settle(http)
            print(
                f"seeded {args.orders} orders in {time.monotonic() - started:.1f}s",
                file=sys.stderr,
            )
            measured = routes(data, http)
            count = cosmos_requests(stack.settings, headers)
            print(f"{'route':32} {'p50 ms':>8} {'p99 ms':>8} {'Cosmos requests':>16}")
            for label, path, query in measured:
                p50, p99 = latency(http, path, query, args.requests)
                print(
                    f"{label:32} {p50:8.1f} {p99:8.1f} {count(label, path, query):16d}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
