"""Schemathesis over every operation of the OpenAPI document the app serves, against the
running local stack: no 5xx, every response matches its declared schema, and every
request that is valid by the schema is accepted.

Both positive and negative cases are generated. "Accepted", for a positive one, means
2xx or a status that depends on state no schema can know: 404 (the id names nothing),
409 (a business rule: stock, credit, status) and 412 (If-Match names another version).
Never 400: a 400 for a schema-valid request means the document does not state a rule
the server enforces, which is what this test exists to catch.

The few rules JSON Schema cannot state are in the document's descriptions; a
`filter_case` hook and `refer_to_the_pool` make generated requests obey them, each
saying which rule and why: references in a body must name existing customers and
products, continuation tokens come only from the server, rules spanning two query
parameters, lengths counted in UTF-16 units, merged order lines. Everything else is
generated as the schema says.

`make fuzz` runs the same test longer (FUZZ_EXAMPLES=200 per operation).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as day_time
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    positive_data_acceptance,
    response_schema_conformance,
)

import function_app  # noqa: F401 - registers the routes the document describes
from devtools.sample_data import ADDRESS
from queries.models import MAX_STATS_DAYS
from shared.openapi import build_document
from tests.api import accepted, customer, unique

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10"))
CHECKS = [not_a_server_error, response_schema_conformance, positive_data_acceptance]
ACCEPTED = ["2xx", "404", "409", "412"]
# Read-your-writes waits are the server's to honour, up to 5 s each: the run stays short.
MAX_WAIT_MS = 50
REQUEST_TIMEOUT = 10.0  # a hung request fails its case instead of the whole run
PRODUCTS = 50  # one per possible order line: references map one-to-one
ORDERS = 6


@dataclass
class Pool:
    """What the run's requests may refer to: data made through the commands first."""

    customers: list[str]
    products: list[str]
    orders: list[str]
    calls: Counter[str] = field(default_factory=Counter)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)


def _pick(pool: list[str], generated: str, keep_one_in: int = 0) -> str:
    """A pool id chosen by the generated value (the same value, the same id); with
    `keep_one_in`, one value in that many stays as generated (an id that names nothing)."""
    number = int(hashlib.sha256(generated.lower().encode()).hexdigest(), 16)
    if keep_one_in and number % keep_one_in == 0:
        return generated
    return pool[number % len(pool)]


# --- rules the schema states only in words -------------------------------------------------


def _utf16_within_limits(value: Any, schema: dict[str, Any], components: dict) -> bool:
    """Text columns count UTF-16 code units; JSON Schema's maxLength counts characters."""
    if "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[1]]
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        return all(
            _utf16_within_limits(v, properties.get(k, {}), components)
            for k, v in value.items()
        )
    if isinstance(value, list):
        return all(
            _utf16_within_limits(v, schema.get("items", {}), components) for v in value
        )
    if isinstance(value, str) and "maxLength" in schema:
        return len(value.encode("utf-16-le")) // 2 <= schema["maxLength"]
    return True


def _merged_lines_fit(body: Any) -> bool:
    """An order's lines for one product are merged; a line holds at most 1000 units."""
    if not isinstance(body, dict) or not isinstance(body.get("items"), list):
        return True
    merged: Counter[str] = Counter()
    for line in body["items"]:
        quantity = line.get("quantity") if isinstance(line, dict) else None
        # A schema-driven client may write 265.0 for an integer: it counts as 265.
        if isinstance(quantity, int | float) and not isinstance(quantity, bool):
            merged[str(line.get("productId", "")).lower()] += quantity
    return all(quantity <= 1000 for quantity in merged.values())


def _instant(text: Any, end_of_day: bool) -> datetime | None:
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime.combine(
                day, day_time.max if end_of_day else day_time.min, UTC
            )
        moment = datetime.fromisoformat(text)
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def _amount(value: Any, _: bool) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _ordered_pair(query: dict[str, Any], low: str, high: str, key: Any) -> None:
    """Two parameters documented as low <= high: swap them when generated the other way."""
    a, b = key(query.get(low), False), key(query.get(high), True)
    if a is not None and b is not None and b < a:
        query[low], query[high] = query[high], query[low]


def _stats_range(query: dict[str, Any]) -> None:
    """GET /stats/sales: from <= to, at most MAX_STATS_DAYS days. Two random dates almost
    never qualify, so `to` is moved into range by an amount drawn from its own value."""
    try:
        first, last = date.fromisoformat(query["from"]), date.fromisoformat(query["to"])
    except (KeyError, TypeError, ValueError):
        return  # not a pair of dates: a negative case, left as generated
    span = abs((last - first).days) % MAX_STATS_DAYS
    if first + timedelta(days=span) > date.max:
        first = date.max - timedelta(days=span)
    query["from"], query["to"] = (
        first.isoformat(),
        (first + timedelta(days=span)).isoformat(),
    )


def _request_body_schema(case: schemathesis.Case) -> dict[str, Any]:
    content = case.operation.definition.raw.get("requestBody", {}).get("content", {})
    return content.get("application/json", {}).get("schema", {})


def install_filter(schema: Any, components: dict[str, Any]) -> None:
    @schema.hook
    def filter_case(context: schemathesis.HookContext, case: schemathesis.Case) -> bool:
        if not isinstance(case.body, dict):
            return True
        return _utf16_within_limits(
            case.body, _request_body_schema(case), components
        ) and _merged_lines_fit(case.body)


def refer_to_the_pool(case: schemathesis.Case, pool: Pool) -> None:
    """Make a generated case name this run's data and obey the two-parameter rules.

    Done when the case runs, not in a `map_case` hook: some cases are built while pytest
    collects, before the stack and the pool exist.
    """
    # Ids in the path: mostly this run's data, so the handlers behind the 404 run too.
    for name, ids in (
        ("customerId", pool.customers),
        ("productId", pool.products),
        ("orderId", pool.orders),
    ):
        if case.path_parameters and isinstance(case.path_parameters.get(name), str):
            case.path_parameters[name] = _pick(
                ids, case.path_parameters[name], keep_one_in=5
            )
    # Ids in a body must exist (else 400, as documented); distinct generated ids stay
    # distinct, so the merged-lines rule the filter checked still holds.
    if isinstance(case.body, dict):
        body = case.body
        if isinstance(body.get("customerId"), str):
            body["customerId"] = _pick(pool.customers, body["customerId"])
        if isinstance(body.get("productId"), str):
            body["productId"] = _pick(pool.products, body["productId"])
        if isinstance(body.get("items"), list):
            lines = [
                line
                for line in body["items"]
                if isinstance(line, dict) and isinstance(line.get("productId"), str)
            ]
            # The k-th distinct id gets the k-th product after a start drawn from the
            # first id: one-to-one for up to PRODUCTS (= the most lines) distinct ids.
            start = (
                pool.products.index(_pick(pool.products, lines[0]["productId"]))
                if lines
                else 0
            )
            mapped: dict[str, str] = {}
            for line in lines:
                key = line["productId"].lower()
                if key not in mapped:
                    mapped[key] = pool.products[(start + len(mapped)) % PRODUCTS]
                line["productId"] = mapped[key]
    # A key reused with another request is 422 by design, and generated keys repeat
    # ("0"): a key per (operation, ids, body) keeps replays (same request, same answer)
    # and never reuses a key for another request.
    key = (case.headers or {}).get("Idempotency-Key")
    if isinstance(key, str) and key:
        request = [case.operation.label, case.path_parameters, case.body]
        digest = hashlib.sha256(json.dumps(request, default=str).encode()).hexdigest()
        case.headers["Idempotency-Key"] = f"{key[:187]}.{digest[:12]}"
    if case.query:
        query = case.query
        # Tokens are minted by the server for one query; a made-up one is 400 by design.
        query.pop("continuationToken", None)
        if isinstance(query.get("waitMs"), int):
            query["waitMs"] = min(query["waitMs"], MAX_WAIT_MS)
        _ordered_pair(query, "minTotal", "maxTotal", _amount)
        _ordered_pair(query, "placedFrom", "placedTo", _instant)
        if "from" in query and "to" in query:
            _stats_range(query)


# --- the run -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pool(http: httpx.Client) -> Pool:
    customers = [customer(http, credit=9_999_999_999_999.99)["id"] for _ in range(3)]
    products = [
        accepted(
            http.post(
                "/products",
                json={
                    "sku": unique("FUZZ"),
                    "name": unique("Fuzz product"),
                    "price": 1.25,
                    "stock": 1_000_000_000,
                },
            )
        )["id"]
        for _ in range(PRODUCTS)
    ]
    orders = []
    for i in range(ORDERS):
        body = {
            "customerId": customers[i % len(customers)],
            "items": [{"productId": products[i], "quantity": 1}],
            "shippingAddress": ADDRESS,
        }
        orders.append(accepted(http.post("/orders", json=body))["id"])
    deadline = time.monotonic() + 30
    for order_id in orders:  # queries answer 404 until the order is projected
        while http.get(f"/orders/{order_id}").status_code != 200:
            assert time.monotonic() < deadline, f"order {order_id} not projected"
            time.sleep(0.05)
    return Pool(customers, products, orders)


DOCUMENT = build_document()  # what GET /api/openapi.json serves (a test checks that)
schema = schemathesis.openapi.from_dict(
    DOCUMENT,
    config=schemathesis.Config.from_dict(
        {
            "generation": {"mode": "all"},
            "checks": {"positive_data_acceptance": {"expected-statuses": ACCEPTED}},
        }
    ),
)
install_filter(schema, DOCUMENT["components"]["schemas"])


@pytest.fixture(scope="module")
def fuzz_run(
    request: pytest.FixtureRequest, devhost: Any, http: httpx.Client, pool: Pool
) -> Iterator[dict[str, Any]]:
    assert http.get("/openapi.json").json() == DOCUMENT, (
        "the app serves another document"
    )
    yield {
        "base_url": devhost.base_url + "/api",
        "pool": pool,
        # An Orders.Admin token: the fuzzer explores the contract, not the role matrix
        # (tests/test_auth_http.py covers that).
        "headers": {"Authorization": http.headers["Authorization"]},
    }
    by_mode: dict[str, Counter[int]] = {}
    for (mode, status), count in pool.statuses.items():
        by_mode.setdefault(mode, Counter())[status] += count
    summary = "; ".join(
        f"{mode}: {sum(c.values())} ({dict(sorted(c.items()))})"
        for mode, c in sorted(by_mode.items())
    )
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    # The figures belong in the run's output, not in captured teardown output.
    with capture.global_and_fixture_disabled():
        print(
            f"\nfuzz: {sum(pool.calls.values())} requests over {len(pool.calls)} "
            f"operations; by generation mode and status: {summary}"
        )


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,  # requests have REQUEST_TIMEOUT; a deadline would flake under load
    # The data is generated by the schema's rules and the hooks above; generation that
    # filters or builds slowly is expected, not a health problem of this test.
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_every_operation_honours_its_schema(
    case: schemathesis.Case, fuzz_run: dict[str, Any]
) -> None:
    pool: Pool = fuzz_run["pool"]
    refer_to_the_pool(case, pool)
    response = case.call_and_validate(
        base_url=fuzz_run["base_url"],
        headers=fuzz_run["headers"],
        checks=CHECKS,
        timeout=REQUEST_TIMEOUT,
    )
    pool.calls[case.operation.label] += 1
    mode = case.meta.generation.mode.value if case.meta else "explicit"
    pool.statuses[(mode, response.status_code)] += 1
