"""Every query route over real HTTP against the local stack: data made through the commands.

One module-scoped data set, its names made unique per run (a random tag in customer
and product names, so `q` finds only this run's data): customer A with 45 orders in
every status, customer B with 5, three products. Expected results are computed from
what the commands answered, never from the read model itself.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.api import accepted, customer, order, product

PROBLEM = "application/problem+json"
SETTLE_SECONDS = 30.0


def settle(http: httpx.Client, timeout: float = SETTLE_SECONDS) -> None:
    """Wait until every projection has applied everything the write side published."""
    deadline = time.monotonic() + timeout
    while True:
        response = http.get("/projections")
        if response.status_code == 200 and all(
            p["lagEvents"] == 0 for p in response.json()["projections"]
        ):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"projections did not catch up: {response.text}")
        time.sleep(0.1)


def money(value: Any) -> Decimal:
    return Decimal(str(value))


@dataclass
class Placed:
    id: str
    customer: str
    products: list[str]  # product names on the order
    total: Decimal
    status: str = "placed"
    version: int = 1
    placed_at: str = ""


@dataclass
class World:
    tag: str
    a: dict[str, Any]
    b: dict[str, Any]
    products: list[dict[str, Any]]
    orders: list[Placed] = field(default_factory=list)
    stats_before: dict[str, Any] = field(default_factory=dict)
    today: str = ""

    def of(self, who: dict[str, Any]) -> list[Placed]:
        """A customer's orders, newest first (they were placed one after the other)."""
        return [o for o in reversed(self.orders) if o.customer == who["id"]]

    def newest_first(self, orders: list[Placed] | None = None) -> list[str]:
        return [
            o.id
            for o in (orders if orders is not None else list(reversed(self.orders)))
        ]


def _act(
    http: httpx.Client, placed: Placed, action: str, body: dict | None = None
) -> None:
    result = accepted(http.post(f"/orders/{placed.id}/{action}", json=body or {}))
    placed.status, placed.version = (
        result.get("status", placed.status),
        result["version"],
    )


@pytest.fixture(scope="module")
def world(http: httpx.Client) -> World:
    tag = uuid.uuid4().hex[:8]
    settle(http)
    today = datetime.now(UTC).date().isoformat()
    stats_before = http.get("/stats/sales", params={"from": today, "to": today}).json()
    a = customer(http, credit=10_000_000, name=f"Ada {tag} Lovelace")
    b = customer(http, credit=10_000_000, name=f"Grace {tag} Hopper")
    prices = [Decimal("100.00"), Decimal("25.10"), Decimal("72.55")]
    names = [f"Widget {tag} Red", f"Gizmo {tag} Blue", f"Sprocket {tag} Steel"]
    products = [
        product(http, price=float(p), stock=100_000, name=n)
        for p, n in zip(prices, names, strict=True)
    ]
    world = World(tag, a, b, products, stats_before=stats_before, today=today)

    def place(who: dict[str, Any], lines: list[tuple[int, int]]) -> Placed:
        result = order(http, who["id"], [(products[p]["id"], q) for p, q in lines])
        placed = Placed(
            result["id"],
            who["id"],
            [names[p] for p, _ in lines],
            sum((prices[p] * q for p, q in lines), Decimal(0)),
        )
        assert money(result["total"]) == placed.total
        world.orders.append(placed)
        return placed

    for i in range(45):
        lines = [(i % 3, i % 4 + 1)] + ([((i + 1) % 3, 1)] if i % 4 == 0 else [])
        placed = place(a, lines)
        if i % 5 == 0:
            _act(http, placed, "cancel", {"reason": "changed my mind"})
        elif i % 5 == 1:
            _act(http, placed, "ship", {"trackingNumber": f"TRK{i}"})
        elif i % 5 == 2:
            _act(http, placed, "ship", {"trackingNumber": f"TRK{i}"})
            _act(http, placed, "deliver")
    for i in range(5):
        place(b, [(1, i + 1)])  # Gizmo only
    settle(http)
    for placed in world.orders:
        detail = http.get(f"/orders/{placed.id}").json()
        assert detail["version"] == placed.version and detail["status"] == placed.status
        placed.placed_at = detail["placedAt"]
    return world


def walk(
    http: httpx.Client, path: str, page_size: int, **filters: Any
) -> tuple[list[dict], list[int]]:
    """Every item of a paged route, following tokens; also the size of each page."""
    items, sizes, token = [], [], None
    while True:
        params = {**filters, "pageSize": page_size}
        if token is not None:
            params["continuationToken"] = token
        response = http.get(path, params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"items", "continuationToken"}
        items += body["items"]
        sizes.append(len(body["items"]))
        token = body["continuationToken"]
        if token is None:
            return items, sizes
        assert len(sizes) < 1000, "paging does not end"


def ids(items: list[dict]) -> list[str]:
    return [item["id"] for item in items]


def assert_pages(sizes: list[int], total: int, page_size: int) -> None:
    full, rest = divmod(total, page_size)
    assert sizes == [page_size] * full + ([rest] if rest else []) or (
        total == 0 and sizes == [0]
    )


# --- paging --------------------------------------------------------------------------------


def test_a_customers_45_orders_page_by_7_once_each_newest_first(http, world):
    expected = world.of(world.a)
    items, sizes = walk(http, f"/customers/{world.a['id']}/orders", 7)
    assert ids(items) == [o.id for o in expected]
    assert_pages(sizes, 45, 7)  # 6 pages of 7, then 3, and the last token is null
    moments = [datetime.fromisoformat(i["placedAt"]) for i in items]
    assert moments == sorted(moments, reverse=True)
    by_id = {o.id: o for o in expected}
    for item in items:
        placed = by_id[item["id"]]
        assert set(item) == {
            "id",
            "status",
            "itemCount",
            "total",
            "placedAt",
            "version",
        }
        assert (item["status"], money(item["total"]), item["version"]) == (
            placed.status,
            placed.total,
            placed.version,
        )


@pytest.mark.parametrize("page_size", [7, 9, 45, 100, 1])
def test_order_search_by_customer_pages_exactly(http, world, page_size):
    items, sizes = walk(http, "/orders", page_size, customerId=world.a["id"])
    assert ids(items) == [o.id for o in world.of(world.a)]
    assert_pages(sizes, 45, page_size)


@pytest.mark.parametrize("page_size", [7, 9, 45])
def test_order_search_across_customers_pages_exactly(http, world, page_size):
    # q = a word of A's name only: across all partitions, exactly A's orders.
    items, sizes = walk(http, "/orders", page_size, q=f"ada {world.tag}")
    assert ids(items) == [o.id for o in world.of(world.a)]
    assert_pages(sizes, 45, page_size)


def test_all_orders_unfiltered_are_each_listed_once_newest_first(http, world):
    items, _ = walk(http, "/orders", 50)
    listed = ids(items)
    assert len(listed) == len(set(listed))
    assert set(world.newest_first()) <= set(listed)
    mine = [i for i in listed if i in set(world.newest_first())]
    assert mine == world.newest_first()
    keys = [(i["placedAt"], i["id"]) for i in items]
    assert keys == sorted(keys, reverse=True)


def test_a_token_is_opaque_and_bound_to_its_filters(http, world):
    first = http.get(
        f"/customers/{world.a['id']}/orders", params={"pageSize": 2, "status": "placed"}
    )
    token = first.json()["continuationToken"]
    assert token and all(c.isalnum() or c in "-_" for c in token)
    again = http.get(
        f"/customers/{world.a['id']}/orders",
        params={"pageSize": 2, "status": "placed", "continuationToken": token},
    )
    assert again.status_code == 200
    assert not set(ids(again.json()["items"])) & set(ids(first.json()["items"]))
    for path, params in [
        (f"/customers/{world.a['id']}/orders", {"status": "shipped"}),
        (f"/customers/{world.b['id']}/orders", {"status": "placed"}),
        ("/orders", {"customerId": world.a["id"]}),
        ("/orders", {"status": "placed"}),
    ]:
        reused = http.get(path, params={**params, "continuationToken": token})
        assert reused.status_code == 400, (path, params, reused.text)
        assert reused.json()["errors"][0]["field"] == "continuationToken"

    across = http.get("/orders", params={"pageSize": 2, "q": world.tag}).json()[
        "continuationToken"
    ]
    assert across
    assert (
        http.get(
            "/orders", params={"q": world.tag, "continuationToken": across}
        ).status_code
        == 200
    )
    other = http.get(
        "/orders", params={"q": f"ada {world.tag}", "continuationToken": across}
    )
    assert other.status_code == 400


# --- filters ----------------------------------------------------------------------------


def _search(http: httpx.Client, **filters: Any) -> list[str]:
    return ids(walk(http, "/orders", 100, **filters)[0])


@pytest.mark.parametrize("status", ["placed", "shipped", "delivered", "cancelled"])
def test_status_filter(http, world, status):
    expected = [o.id for o in world.of(world.a) if o.status == status]
    assert expected
    assert (
        ids(walk(http, f"/customers/{world.a['id']}/orders", 4, status=status)[0])
        == expected
    )
    assert _search(http, customerId=world.a["id"], status=status) == expected
    assert _search(http, q=f"ada {world.tag}", status=status) == expected


def test_customer_filter(http, world):
    assert _search(http, customerId=world.b["id"]) == [o.id for o in world.of(world.b)]
    assert _search(http, customerId=world.b["id"].upper()) == [
        o.id for o in world.of(world.b)
    ]
    assert _search(http, customerId=str(uuid.uuid4())) == []
    assert _search(http, customerId=str(uuid.uuid4()), q="ada") == []
    assert _search(http, customerId="a/b?c#d", q="ada") == []


@pytest.mark.parametrize(
    ("low", "high"),
    [
        ("100", None),
        (None, "72.55"),
        ("72.55", "125.10"),
        ("125.10", "125.10"),
        ("0", "0"),
    ],
)
def test_total_filters(http, world, low, high):
    def within(o: Placed) -> bool:
        return (low is None or o.total >= Decimal(low)) and (
            high is None or o.total <= Decimal(high)
        )

    bounds = {
        k: v for k, v in {"minTotal": low, "maxTotal": high}.items() if v is not None
    }
    mine = [o.id for o in reversed(world.orders) if within(o)]
    assert mine or low == "0"
    assert _search(http, q=world.tag, **bounds) == mine
    assert _search(http, customerId=world.a["id"], **bounds) == [
        o.id for o in world.of(world.a) if within(o)
    ]


def test_placed_between_two_instants_inclusive(http, world):
    newest = world.of(world.a)
    start, end = newest[30].placed_at, newest[10].placed_at
    expected = [o.id for o in newest[10:31]]
    assert (
        _search(http, customerId=world.a["id"], placedFrom=start, placedTo=end)
        == expected
    )
    assert (
        _search(http, q=f"ada {world.tag}", placedFrom=start, placedTo=end) == expected
    )
    # An offset is honoured: the same instants written in UTC+02:00.
    shifted = {
        name: (datetime.fromisoformat(value) + timedelta(hours=2))
        .isoformat()
        .replace("+00:00", "+02:00")
        for name, value in {"placedFrom": start, "placedTo": end}.items()
    }
    assert _search(http, customerId=world.a["id"], **shifted) == expected


def test_placed_dates_cover_whole_days(http, world):
    day = date.fromisoformat(world.orders[0].placed_at[:10])
    if any(o.placed_at[:10] != day.isoformat() for o in world.orders):
        pytest.skip("the data set straddles midnight UTC")
    everything = [o.id for o in world.of(world.a)]
    before, after = (
        (day - timedelta(days=1)).isoformat(),
        (day + timedelta(days=1)).isoformat(),
    )
    a = world.a["id"]
    assert (
        _search(
            http, customerId=a, placedFrom=day.isoformat(), placedTo=day.isoformat()
        )
        == everything
    )
    assert _search(http, q=f"ada {world.tag}", placedTo=day.isoformat()) == everything
    assert _search(http, customerId=a, placedTo=before) == []
    assert _search(http, customerId=a, placedFrom=after) == []
    assert _search(http, q=f"ada {world.tag}", placedFrom=after) == []


def test_q_matches_a_customer_name_case_insensitively(http, world):
    assert _search(http, q=f"GRACE {world.tag.upper()} hopper") == [
        o.id for o in world.of(world.b)
    ]
    assert _search(http, q=f"{world.tag} lovelace") == [o.id for o in world.of(world.a)]
    # With a customer given, their own name matches all of their orders.
    assert _search(http, customerId=world.a["id"], q="LOVELACE") == [
        o.id for o in world.of(world.a)
    ]
    assert _search(http, customerId=world.b["id"], q=f"ada {world.tag}") == []


@pytest.mark.parametrize("index", [0, 1, 2])
def test_q_matches_a_product_name_case_insensitively(http, world, index):
    name = world.products[index]["name"]
    q = name.upper() if index % 2 else name.title()
    expected = [o.id for o in reversed(world.orders) if name in o.products]
    assert expected
    assert _search(http, q=q) == expected
    for who in (world.a, world.b):
        assert _search(http, customerId=who["id"], q=q) == [
            o.id for o in world.of(who) if name in o.products
        ]


def test_filters_combine(http, world):
    gizmo = world.products[1]["name"]
    expected = [
        o.id
        for o in world.of(world.a)
        if o.status == "cancelled" and gizmo in o.products and o.total >= Decimal(50)
    ]
    assert expected
    found = _search(
        http,
        q=gizmo.lower(),
        status="cancelled",
        minTotal="50",
        customerId=world.a["id"],
    )
    assert found == expected
    assert _search(http, q=gizmo.lower(), status="cancelled", minTotal="50") == expected


# --- single resources, read-your-writes -------------------------------------------------


def _counts(orders: list[Placed]) -> dict[str, int]:
    return {
        s: sum(o.status == s for o in orders)
        for s in ("placed", "shipped", "delivered", "cancelled")
    }


@pytest.mark.parametrize("who", ["a", "b"])
def test_customer_detail_totals(http, world, who):
    person = getattr(world, who)
    response = http.get(f"/customers/{person['id']}")
    assert response.status_code == 200
    body = response.json()
    assert response.headers["ETag"] == f'"{body["version"]}"'
    mine = world.of(person)
    assert body == {
        "id": person["id"],
        "name": person["name"],
        "email": person["email"],
        "creditLimit": 10_000_000,
        "orderCount": len(mine),
        "openOrderCount": sum(o.status in ("placed", "shipped") for o in mine),
        "totalSpent": float(
            sum((o.total for o in mine if o.status != "cancelled"), Decimal(0))
        ),
        "ordersByStatus": _counts(mine),
        "lastOrderAt": mine[0].placed_at,
        "version": body["version"],
    }


def test_product_detail_sales(http, world):
    for index, made in enumerate(world.products):
        units = revenue = Decimal(0)
        for placed in world.orders:
            if placed.status != "cancelled" and made["name"] in placed.products:
                detail = http.get(f"/orders/{placed.id}").json()
                line = next(i for i in detail["items"] if i["productId"] == made["id"])
                units += line["quantity"]
                revenue += money(line["lineTotal"])
        response = http.get(f"/products/{made['id']}")
        assert response.status_code == 200, index
        body = response.json()
        version = int(response.headers["ETag"].strip('"'))
        assert (
            body["version"] == version and version > 1
        )  # stock reservations count as changes
        assert (body["unitsSold"], money(body["revenue"])) == (units, revenue)
        assert {k: body[k] for k in ("sku", "name")} == {
            "sku": made["sku"],
            "name": made["name"],
        }
        assert body["stock"] == 100_000 - int(units)  # cancelled orders released theirs


def test_order_detail_etag_and_read_your_writes(http, world):
    placed = next(o for o in world.orders if o.status == "delivered")
    fresh = http.get(
        f"/orders/{placed.id}", params={"minVersion": placed.version, "waitMs": 1000}
    )
    assert fresh.status_code == 200 and fresh.headers["ETag"] == f'"{placed.version}"'
    assert "X-Read-Model-Stale" not in fresh.headers
    started = time.monotonic()
    stale = http.get(
        f"/orders/{placed.id}", params={"minVersion": placed.version + 1, "waitMs": 300}
    )
    assert time.monotonic() - started >= 0.3
    assert stale.status_code == 200 and stale.headers["X-Read-Model-Stale"] == "true"
    assert stale.headers["ETag"] == f'"{placed.version}"'
    assert stale.json()["version"] == placed.version


def test_waiting_readers_hold_no_worker_thread(http, world):
    """Twice as many read-your-writes waits as the host has worker threads: each waits
    its whole time (none is turned away stale at once), and a command sent meanwhile
    is answered while every wait is still on."""
    from concurrent.futures import ThreadPoolExecutor

    from devtools.devhost.invocation import default_thread_count

    placed = next(o for o in world.orders if o.status == "delivered")
    waiters = 2 * default_thread_count()  # the host's pool for plain functions
    ask = {"minVersion": placed.version + 1, "waitMs": 2000}

    def wait() -> tuple[httpx.Response, float, float]:
        with httpx.Client(base_url=http.base_url, headers=http.headers) as own:
            began = time.monotonic()
            response = own.get(f"/orders/{placed.id}", params=ask, timeout=30)
            return response, time.monotonic() - began, time.monotonic()

    with ThreadPoolExecutor(waiters) as pool:
        waits = [pool.submit(wait) for _ in range(waiters)]
        time.sleep(0.3)  # the waits are under way
        customer(http, name=f"Patient {world.tag} Reader")
        command_answered = time.monotonic()
        results = [w.result() for w in waits]
    for response, took, _ in results:
        assert response.status_code == 200
        assert response.headers["X-Read-Model-Stale"] == "true"
        assert response.json()["version"] == placed.version
        assert took >= 2.0  # waited the whole waitMs, not answered at once
    assert command_answered < min(ended for _, _, ended in results)


def test_read_your_writes_waits_for_a_change(http, world):
    fresh = customer(http, name=f"Rita {world.tag} Levi")
    seen = http.get(
        f"/customers/{fresh['id']}", params={"minVersion": 1, "waitMs": 5000}
    )
    assert seen.status_code == 200 and "X-Read-Model-Stale" not in seen.headers
    changed = accepted(http.patch(f"/customers/{fresh['id']}", json={"creditLimit": 5}))
    # Asked right after the 202: the query waits for the projection rather than answering old data.
    after = http.get(
        f"/customers/{fresh['id']}",
        params={"minVersion": changed["version"], "waitMs": 5000},
    )
    assert after.status_code == 200 and "X-Read-Model-Stale" not in after.headers
    assert (
        after.json()["creditLimit"] == 5
        and after.headers["ETag"] == f'"{changed["version"]}"'
    )
    assert after.json()["orderCount"] == 0 and after.json()["lastOrderAt"] is None
    no_orders = http.get(f"/customers/{fresh['id']}/orders")
    assert no_orders.status_code == 200
    assert no_orders.json() == {"items": [], "continuationToken": None}

    stock = accepted(
        http.post(f"/products/{world.products[2]['id']}/stock", json={"delta": 1})
    )
    read = http.get(
        f"/products/{world.products[2]['id']}",
        params={"minVersion": stock["version"], "waitMs": 5000},
    )
    assert (
        read.headers["ETag"] == f'"{stock["version"]}"'
        and "X-Read-Model-Stale" not in read.headers
    )
    accepted(
        http.post(f"/products/{world.products[2]['id']}/stock", json={"delta": -1})
    )
    settle(http)


def test_a_rename_reaches_the_name_search(http, world):
    renamed = f"Grace {world.tag} Brewster"
    accepted(http.patch(f"/customers/{world.b['id']}", json={"name": renamed}))
    settle(http)
    try:
        assert _search(http, q=f"{world.tag} brewster") == [
            o.id for o in world.of(world.b)
        ]
        assert _search(http, q=f"{world.tag} hopper") == []
        assert (
            http.get(f"/orders/{world.of(world.b)[0].id}").json()["customer"]["name"]
            == renamed
        )
    finally:
        accepted(
            http.patch(f"/customers/{world.b['id']}", json={"name": world.b["name"]})
        )
        settle(http)


# --- statistics --------------------------------------------------------------------------


def _day(stats: dict[str, Any], day: str) -> dict[str, Any]:
    return next(d for d in stats["days"] if d["date"] == day)


def test_sales_stats_grow_by_exactly_what_was_placed(http, world):
    if any(o.placed_at[:10] != world.today for o in world.orders):
        pytest.skip("the data set straddles midnight UTC")
    response = http.get("/stats/sales", params={"from": world.today, "to": world.today})
    assert response.status_code == 200
    after, before = response.json(), world.stats_before
    cancelled = [o for o in world.orders if o.status == "cancelled"]
    live = [o for o in world.orders if o.status != "cancelled"]
    delta = {
        key: money(_day(after, world.today)[key])
        - money(_day(before, world.today)[key])
        for key in ("orders", "revenue", "cancelled")
    }
    assert delta == {
        "orders": len(world.orders),
        "revenue": sum((o.total for o in live), Decimal(0)),
        "cancelled": len(cancelled),
    }
    assert after["totals"] == {
        k: _day(after, world.today)[k] for k in ("orders", "revenue", "cancelled")
    }

    ranked = [(money(p["revenue"]), p["units"]) for p in after["topProducts"]]
    assert ranked == sorted(ranked, reverse=True) and len(ranked) <= 10
    sold = {p["productId"]: p for p in after["topProducts"]}
    for made in world.products:
        if made["id"] in sold:  # our products are only ours: their figures are exact
            units = revenue = Decimal(0)
            for placed in live:
                for line in http.get(f"/orders/{placed.id}").json()["items"]:
                    if line["productId"] == made["id"]:
                        units += line["quantity"]
                        revenue += money(line["lineTotal"])
            assert (sold[made["id"]]["units"], money(sold[made["id"]]["revenue"])) == (
                units,
                revenue,
            )
            assert sold[made["id"]]["name"] == made["name"]


def test_sales_stats_list_every_day_of_the_range(http, world):
    today = date.fromisoformat(world.today)
    first, last = today - timedelta(days=3), today + timedelta(days=2)
    stats = http.get(
        "/stats/sales", params={"from": first.isoformat(), "to": last.isoformat()}
    ).json()
    assert [d["date"] for d in stats["days"]] == [
        (first + timedelta(days=n)).isoformat() for n in range(6)
    ]
    # Orders of this session fall on the world's day, or on the next if the run crossed
    # midnight (UTC); every other day of the range is empty.
    busy = {world.today, datetime.now(UTC).date().isoformat()}
    for d in stats["days"]:
        if d["date"] not in busy:
            assert d == {"date": d["date"], "orders": 0, "revenue": 0, "cancelled": 0}
    empty = http.get(
        "/stats/sales", params={"from": "2000-01-01", "to": "2000-12-31"}
    ).json()
    assert len(empty["days"]) == 366 and empty["topProducts"] == []
    assert empty["totals"] == {"orders": 0, "revenue": 0, "cancelled": 0}


# --- errors --------------------------------------------------------------------------------

BAD = [
    ("/orders", {"pageSize": "0"}, "pageSize"),
    ("/orders", {"pageSize": "101"}, "pageSize"),
    ("/orders", {"pageSize": "many"}, "pageSize"),
    ("/orders", {"status": "lost"}, "status"),
    ("/orders", {"minTotal": "-1"}, "minTotal"),
    ("/orders", {"maxTotal": "cheap"}, "maxTotal"),
    ("/orders", {"minTotal": "10", "maxTotal": "5"}, "maxTotal"),
    ("/orders", {"placedFrom": "2026-13-01"}, "placedFrom"),
    ("/orders", {"placedTo": "tomorrow"}, "placedTo"),
    ("/orders", {"placedFrom": "2026-11-02", "placedTo": "2026-11-01"}, "placedTo"),
    ("/orders", {"q": " "}, "q"),
    ("/orders", {"continuationToken": "not-a-token"}, "continuationToken"),
    ("/orders", {"continuationToken": "eyJ2IjoxfQ"}, "continuationToken"),
    ("/orders", {"sort": "total"}, "sort"),
    ("/customers/{a}/orders", {"pageSize": "0"}, "pageSize"),
    ("/customers/{a}/orders", {"status": "open"}, "status"),
    ("/customers/{a}/orders", {"q": "x"}, "q"),
    ("/customers/{a}/orders", {"continuationToken": "%%%"}, "continuationToken"),
    ("/customers/{a}", {"minVersion": "0"}, "minVersion"),
    ("/customers/{a}", {"waitMs": "5001"}, "waitMs"),
    ("/orders/{order}", {"waitMs": "-1"}, "waitMs"),
    ("/orders/{order}", {"minVersion": "one"}, "minVersion"),
    ("/products/{product}", {"status": "placed"}, "status"),
    ("/stats/sales", {"to": "2026-01-01"}, "from"),
    ("/stats/sales", {"from": "2026-01-01"}, "to"),
    ("/stats/sales", {"from": "2026-1-1", "to": "2026-01-02"}, "from"),
    ("/stats/sales", {"from": "2026-01-02", "to": "2026-01-01"}, "to"),
    ("/stats/sales", {"from": "2024-01-01", "to": "2025-01-01"}, "to"),
    ("/stats/sales", {"from": "2026-01-01", "to": "2026-01-02", "top": "5"}, "top"),
]


@pytest.mark.parametrize(("path", "params", "field_name"), BAD)
def test_bad_parameters_are_400_problems(http, world, path, params, field_name):
    url = path.format(
        a=world.a["id"], order=world.orders[0].id, product=world.products[0]["id"]
    )
    response = http.get(url, params=params)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == 400 and body["type"].endswith("/validation")
    assert [e["field"] for e in body["errors"]] == [field_name]


@pytest.mark.parametrize(
    "path",
    [
        "/orders/{id}",
        "/customers/{id}",
        "/customers/{id}/orders",
        "/products/{id}",
        "/orders/not-an-id",
        "/customers/x%3Fy",
    ],
)
def test_unknown_resources_are_404_problems(http, path):
    response = http.get(path.format(id=uuid.uuid4()))
    assert response.status_code == 404, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["status"] == 404
