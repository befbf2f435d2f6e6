"""The query side without I/O: tokens, parameters, SQL building, aggregation, paging logic."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from azure.cosmos.exceptions import CosmosHttpResponseError

from queries import aggregates, models, order_search, paging, tokens
from shared import config
from shared.errors import ValidationFailed
from shared.http import parse_query
from shared.money import from_cents
from shared.read_model import AGGREGATE_ID
from sync import customer_view, sales_stats
from sync.writes import Counted
from tests.memory_store import MemoryStore

# --- continuation tokens -----------------------------------------------------------------

FP = tokens.fingerprint("orders/*", "SELECT 1", [{"name": "@q", "value": "x"}])


@pytest.mark.parametrize(
    "position",
    [
        tokens.Position(
            sdk='{"token":"+RID:abc==#RT:1#TRC:5","range":{"min":"","max":"FF"}}'
        ),
        tokens.Position(after=("2026-11-24T10:00:00.123000Z", "0c1e-ä")),
    ],
)
def test_a_token_round_trips_and_is_url_safe(position):
    token = tokens.encode(FP, position)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", token)
    assert tokens.decode(token, FP) == position


def test_a_token_for_other_filters_is_refused():
    token = tokens.encode(FP, tokens.Position(after=("a", "b")))
    other = tokens.fingerprint("orders/*", "SELECT 1", [{"name": "@q", "value": "y"}])
    with pytest.raises(ValidationFailed) as refused:
        tokens.decode(token, other)
    assert refused.value.errors[0].field == "continuationToken"
    assert "other filters" in refused.value.errors[0].message


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "!!!!",
        "a",
        "eyJ2IjoxfQ==",  # padding is not ours, and "{"v":1}" lacks everything else
        _b64(b"not json"),
        _b64(b"[1, 2]"),
        _b64(b"\xff\xfe"),
        _b64(json.dumps({"v": 2, "f": FP, "s": "x"}).encode()),
        _b64(json.dumps({"v": 1, "f": FP}).encode()),
        _b64(json.dumps({"v": 1, "f": FP, "s": 5}).encode()),
        _b64(json.dumps({"v": 1, "f": FP, "s": ""}).encode()),
        _b64(json.dumps({"v": 1, "f": FP, "a": ["x"]}).encode()),
        _b64(json.dumps({"v": 1, "f": FP, "a": ["x", 1]}).encode()),
        _b64(json.dumps({"v": 1, "f": FP, "a": ["x", "y"], "s": "z"}).encode()),
        _b64(b"[" * 5000 + b"]" * 5000),
    ],
)
def test_garbage_tokens_are_400_not_500(token):
    with pytest.raises(ValidationFailed) as refused:
        tokens.decode(token, FP)
    assert refused.value.status == 400
    assert refused.value.errors[0].field == "continuationToken"


def test_a_tampered_token_is_refused():
    token = tokens.encode(FP, tokens.Position(sdk="continuation"))
    body = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    body["f"] = "0" * 16
    with pytest.raises(ValidationFailed):
        tokens.decode(_b64(json.dumps(body).encode()), FP)


def test_the_fingerprint_follows_filters_not_page_size_or_position():
    base = order_search.orders_query(status="placed", q="blue")
    assert (
        base.fingerprint()
        == order_search.orders_query(status="placed", q="blue").fingerprint()
    )
    assert (
        base.fingerprint()
        != order_search.orders_query(status="shipped", q="blue").fingerprint()
    )
    assert (
        base.fingerprint() != order_search.orders_query(status="placed").fingerprint()
    )
    one = order_search.customer_orders_query("c1")
    assert one.fingerprint() != order_search.customer_orders_query("c2").fingerprint()
    assert one.fingerprint() != order_search.orders_query().fingerprint()


# --- query parameters --------------------------------------------------------------------


def _parse(model: type, query: dict[str, str]) -> Any:
    return parse_query(model, query)


def _refused(model: type, query: dict[str, str]) -> list[str]:
    with pytest.raises(ValidationFailed) as refused:
        parse_query(model, query)
    assert refused.value.status == 400
    return [e.field for e in refused.value.errors]


def test_search_defaults_and_conversions():
    params = _parse(
        models.OrderSearchParams,
        {
            "customerId": "ABC-1",
            "q": "  Blue Widget ",
            "minTotal": "10.5",
            "maxTotal": "20",
            "placedFrom": "2026-11-24",
            "placedTo": "2026-11-24",
            "code": "function-key",  # the host's function key is not a filter
        },
    )
    assert params.pageSize == 20 and params.continuationToken is None
    assert params.customerId == "abc-1" and params.q == "blue widget"
    assert params.minTotal == Decimal("10.5") and params.maxTotal == Decimal(20)
    assert params.placedFrom == datetime(2026, 11, 24, tzinfo=UTC)
    assert params.placedTo == datetime(2026, 11, 24, 23, 59, 59, 999999, tzinfo=UTC)


def test_datetimes_are_taken_as_utc():
    params = _parse(
        models.OrderSearchParams,
        {"placedFrom": "2026-11-24T10:00:00+02:00", "placedTo": "2026-11-24T09:30:00"},
    )
    assert params.placedFrom == datetime(2026, 11, 24, 8, tzinfo=UTC)
    assert params.placedTo == datetime(2026, 11, 24, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"pageSize": "0"}, "pageSize"),
        ({"pageSize": "101"}, "pageSize"),
        ({"pageSize": "ten"}, "pageSize"),
        ({"status": "open"}, "status"),
        ({"status": ""}, "status"),
        ({"minTotal": "-0.01"}, "minTotal"),
        ({"minTotal": "abc"}, "minTotal"),
        ({"maxTotal": "NaN"}, "maxTotal"),
        ({"maxTotal": "Infinity"}, "maxTotal"),
        ({"minTotal": "10", "maxTotal": "9.99"}, "maxTotal"),
        ({"placedFrom": "2026-02-30"}, "placedFrom"),
        ({"placedFrom": "yesterday"}, "placedFrom"),
        ({"placedTo": "1700000000"}, "placedTo"),
        ({"placedFrom": "2026-11-25", "placedTo": "2026-11-24"}, "placedTo"),
        ({"q": ""}, "q"),
        ({"q": "   "}, "q"),
        ({"q": "blue\nwidget"}, "q"),
        ({"q": "x" * 101}, "q"),
        ({"customerId": ""}, "customerId"),
        ({"continuationToken": ""}, "continuationToken"),
        ({"continuationToken": "x" * 8193}, "continuationToken"),
        ({"sort": "total"}, "sort"),
    ],
)
def test_bad_search_parameters(query, field):
    assert _refused(models.OrderSearchParams, query) == [field]


def test_customer_orders_take_only_status_and_paging():
    assert (
        _parse(
            models.CustomerOrdersParams, {"status": "shipped", "pageSize": "7"}
        ).pageSize
        == 7
    )
    assert _refused(models.CustomerOrdersParams, {"q": "x"}) == ["q"]
    assert _refused(models.CustomerOrdersParams, {"customerId": "x"}) == ["customerId"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"minVersion": "0"}, "minVersion"),
        ({"waitMs": "5001"}, "waitMs"),
        ({"waitMs": "-1"}, "waitMs"),
        ({"pageSize": "5"}, "pageSize"),
    ],
)
def test_bad_read_your_writes_parameters(query, field):
    assert _refused(models.ReadYourWrites, query) == [field]


def test_sales_range():
    params = _parse(models.SalesStatsParams, {"from": "2024-01-01", "to": "2024-12-31"})
    assert (getattr(params, "from"), params.to) == (
        date(2024, 1, 1),
        date(2024, 12, 31),
    )
    assert _refused(
        models.SalesStatsParams, {"from": "2024-01-01", "to": "2025-01-01"}
    ) == ["to"]
    assert _refused(
        models.SalesStatsParams, {"from": "2024-01-02", "to": "2024-01-01"}
    ) == ["to"]
    assert _refused(
        models.SalesStatsParams, {"from": "2024-1-2", "to": "2024-01-03"}
    ) == ["from"]
    assert _refused(
        models.SalesStatsParams, {"from": "2024-01-01T00:00", "to": "2024-01-03"}
    ) == ["from"]
    assert _refused(models.SalesStatsParams, {"to": "2024-01-03"}) == ["from"]
    assert _refused(
        models.SalesStatsParams, {"from": "2024-01-01", "to": "2024-01-03", "x": "1"}
    ) == ["x"]


# --- SQL: parameterized, indexed -------------------------------------------------------


def test_client_values_never_reach_the_sql_text():
    hostile = "x' OR 1=1 --"
    query = order_search.orders_query(
        status="placed",
        min_total=Decimal("1.5"),
        max_total=Decimal(2),
        placed_from=datetime(2026, 1, 1, tzinfo=UTC),
        placed_to=datetime(2026, 1, 2, tzinfo=UTC),
        q=hostile,
    )
    sql = query.sql(after=True, top=True)
    assert hostile not in sql and "placed'" not in sql and "1.5" not in sql
    assert {p["name"]: p["value"] for p in query.parameters} == {
        "@status": "placed",
        "@minTotal": 1.5,
        "@maxTotal": 2,
        "@placedFrom": "2026-01-01T00:00:00.000000Z",
        "@placedTo": "2026-01-02T00:00:00.000000Z",
        "@q": hostile,
    }
    for name in re.findall(r"@\w+", sql):
        assert name in {p["name"] for p in query.parameters} | {
            "@top",
            "@afterPlacedAt",
            "@afterId",
        }


def test_customer_queries_name_their_partition_in_the_where_clause():
    query = order_search.customer_orders_query(
        "c-1", status="cancelled", product_text="blue"
    )
    assert query.partition_key == "c-1" and query.container == "customer-orders"
    assert query.sql().startswith(
        "SELECT c.id, c.status, c.itemCount, c.total, c.placedAt, c.version FROM c "
        "WHERE c.customerId = @customerId AND c.kind = @kind AND c.status = @status "
        "AND CONTAINS(c.productSearch, @q) "
        "ORDER BY c.status ASC, c.placedAt DESC, c.id DESC"
    )
    assert "customerSearch" not in query.sql()  # summaries carry no customer name


def test_search_across_customers_matches_product_or_customer_name():
    query = order_search.orders_query(q="ada")
    assert query.partition_key is None and query.container == "orders"
    assert (
        "(CONTAINS(c.productSearch, @q) OR CONTAINS(c.customerSearch, @q))"
        in query.sql()
    )
    assert query.sql(top=True).startswith("SELECT TOP @top ")
    assert query.sql(after=True).count("@afterPlacedAt") == 2


def _composites(container: str) -> list[list[tuple[str, str]]]:
    spec = next(
        c for c in config.topology()["cosmos"]["containers"] if c["name"] == container
    )
    return [
        [(part["path"], part["order"]) for part in composite]
        for composite in spec["indexingPolicy"].get("compositeIndexes", [])
    ]


def _order_by_paths(sql: str) -> list[tuple[str, str]]:
    clause = sql.split(" ORDER BY ", 1)[1]
    paths = []
    for term in clause.split(", "):
        field, direction = term.split()
        paths.append(
            (
                "/" + field.removeprefix("c."),
                "ascending" if direction == "ASC" else "descending",
            )
        )
    return paths


@pytest.mark.parametrize("status", [None, "placed"])
@pytest.mark.parametrize(
    "build",
    [
        lambda status: order_search.orders_query(status=status),
        lambda status: order_search.customer_orders_query("c", status=status),
    ],
)
def test_every_order_by_has_its_composite_index(build, status):
    query = build(status)
    wanted = _order_by_paths(query.sql())
    flipped = [
        (p, "ascending" if o == "descending" else "descending") for p, o in wanted
    ]
    # A multi-field ORDER BY needs a composite index in that order or its exact opposite.
    assert wanted in _composites(query.container) or flipped in _composites(
        query.container
    )


def test_instants_have_the_read_model_format():
    moment = datetime(2026, 11, 24, 15, 34, 54, 994000, tzinfo=UTC)
    assert order_search.instant(moment) == "2026-11-24T15:34:54.994000Z"
    from commands.domain import iso  # tests may look at both sides; queries/ may not

    assert order_search.instant(moment) == iso(moment)


def test_a_whole_second_has_the_same_width_on_both_sides():
    # '...:54Z' would sort after '...:54.5Z' as text: placedAt needs a fixed width.
    from commands.domain import iso

    moment = datetime(2026, 11, 24, 15, 34, 54, tzinfo=UTC)
    assert iso(moment) == order_search.instant(moment)


# --- aggregation -------------------------------------------------------------------------


def _totals(writes: list[Counted]) -> list[dict[str, Any]]:
    """The totals documents the projections keep for these contributions."""
    store = MemoryStore()
    for write in writes:
        store.execute(write)
    return [doc for (_, _, doc_id), doc in store.docs.items() if doc_id == AGGREGATE_ID]


def _summary(number: int, status: str, total: str, placed_at: str) -> Counted:
    return Counted(
        "customer-orders",
        "c1",
        f"o{number}",
        guard="version",
        version=1,
        fields={"customerId": "c1", "status": status, "total": Decimal(total)},
        counts=customer_view.order_counts(status, Decimal(total)),
        maxima={"lastOrderAt": placed_at},
    )


def test_customer_totals_are_kept_by_the_projection():
    [totals] = _totals(
        [
            _summary(1, "placed", "10.1", "2026-11-02T10:00:00.000000Z"),
            _summary(2, "shipped", "20.2", "2026-11-03T10:00:00.000000Z"),
            _summary(3, "delivered", "0.3", "2026-11-01T10:00:00.000000Z"),
            _summary(4, "cancelled", "99.99", "2026-11-04T10:00:00.000000Z"),
            _summary(5, "placed", "0.1", "2026-10-01T10:00:00.000000Z"),
            # order 1 shipped later: its contribution is replaced, not added again
            replace(
                _summary(1, "shipped", "10.1", "2026-11-02T10:00:00.000000Z"), version=2
            ),
        ]
    )
    assert aggregates.customer_totals(totals) == {
        "orderCount": 5,
        "openOrderCount": 3,
        "totalSpent": Decimal("30.70"),  # exact: 10.1 + 20.2 + 0.3 + 0.1 in cents
        "ordersByStatus": {"placed": 1, "shipped": 2, "delivered": 1, "cancelled": 1},
        "lastOrderAt": "2026-11-04T10:00:00.000000Z",
    }


def test_a_customer_without_orders():
    assert aggregates.customer_totals(None) == {
        "orderCount": 0,
        "openOrderCount": 0,
        "totalSpent": Decimal("0.00"),
        "ordersByStatus": {"placed": 0, "shipped": 0, "delivered": 0, "cancelled": 0},
        "lastOrderAt": None,
    }


_orders = iter(range(10**6))


def _sale(day: str, status: str, *lines: tuple[str, str, int, int]) -> Counted:
    """An order's contribution to its day, as the sales-stats projection plans it."""
    order = {
        "id": f"o{next(_orders)}",
        "status": status,
        "placedAt": f"{day}T12:00:00.000000Z",
        "total": from_cents(sum(line[3] for line in lines)),
        "items": [
            {"productId": p, "name": n, "quantity": u, "lineTotal": from_cents(c)}
            for p, n, u, c in lines
        ],
    }
    counts, labels = sales_stats.sales_counts(order)
    return Counted(
        "daily-sales",
        sales_stats.day_shard(day, sales_stats.shard_of(order["id"])),
        order["id"],
        guard="version",
        version=1,
        fields={"day": day},
        counts=counts,
        labels=labels,
        aggregate_fields={"day": day},
    )


def test_sales_stats_cover_every_day_and_count_only_live_revenue():
    documents = [
        _sale(
            "2026-11-01", "placed", ("p1", "Widget", 2, 2000), ("p2", "Gadget", 1, 1999)
        ),
        _sale("2026-11-01", "cancelled", ("p1", "Widget", 5, 5000)),
        _sale(
            "2026-11-03",
            "delivered",
            ("p1", "Widget v2", 1, 1000),
            ("p3", "Thing", 3, 3999),
        ),
        _sale("2026-11-03", "shipped", ("p2", "Gadget", 1, 1)),
        _sale("2026-10-31", "placed", ("p9", "Outside", 1, 100000)),  # not in the range
    ]
    stats = aggregates.sales_stats(
        _totals(documents), date(2026, 11, 1), date(2026, 11, 4)
    )
    assert stats["days"] == [
        {
            "date": "2026-11-01",
            "orders": 2,
            "revenue": Decimal("39.99"),
            "cancelled": 1,
        },
        {"date": "2026-11-02", "orders": 0, "revenue": Decimal("0.00"), "cancelled": 0},
        {
            "date": "2026-11-03",
            "orders": 2,
            "revenue": Decimal("50.00"),
            "cancelled": 0,
        },
        {"date": "2026-11-04", "orders": 0, "revenue": Decimal("0.00"), "cancelled": 0},
    ]
    assert stats["totals"] == {"orders": 4, "revenue": Decimal("89.99"), "cancelled": 1}
    assert stats["topProducts"] == [
        {"productId": "p3", "name": "Thing", "units": 3, "revenue": Decimal("39.99")},
        {
            "productId": "p1",
            "name": "Widget v2",
            "units": 3,
            "revenue": Decimal("30.00"),
        },
        {"productId": "p2", "name": "Gadget", "units": 2, "revenue": Decimal("20.00")},
    ]


def test_top_products_rank_by_revenue_then_units_and_keep_ten():
    documents = [
        _sale(
            "2026-11-01",
            "placed",
            *[(f"p{i:02d}", f"P{i}", i % 3 + 1, 1000) for i in range(12)],
        )
    ]
    top = aggregates.sales_stats(
        _totals(documents), date(2026, 11, 1), date(2026, 11, 1)
    )["topProducts"]
    assert len(top) == 10
    assert [p["units"] for p in top] == [3, 3, 3, 3, 2, 2, 2, 2, 1, 1]
    assert [p["productId"] for p in top[:4]] == ["p02", "p05", "p08", "p11"]


def test_product_sales_from_the_totals_document():
    totals = {"counters": {"units": 6, "revenueCents": 7500}}
    assert aggregates.product_sales(totals) == {
        "unitsSold": 6,
        "revenue": Decimal("75.00"),
    }
    assert aggregates.product_sales(None) == {
        "unitsSold": 0,
        "revenue": Decimal("0.00"),
    }


# --- paging against a fake container -------------------------------------------------


class FakeContainer:
    """Orders sorted newest first; `query_items` pages them like the SDK, continuation
    in the response hook. `trailing_token`: hand out a token before an empty last page,
    as Cosmos may. `short`: return at most this many items per request."""

    def __init__(
        self, rows: list[dict[str, Any]], trailing_token: bool = False, short: int = 0
    ):
        self.rows = rows
        self.trailing_token = trailing_token
        self.short = short
        self.requests = 0
        self.last_sql = ""
        self.last_parameters: list[dict[str, Any]] = []

    def query_items(
        self, sql: str, parameters: list[dict[str, Any]], **options: Any
    ) -> Any:
        self.last_sql, self.last_parameters = sql, parameters
        if "partition_key" in options:
            return FakePager(self, options["max_item_count"], options["response_hook"])
        values = {p["name"]: p["value"] for p in parameters}
        rows = self.rows
        if "@afterPlacedAt" in values:
            after = (values["@afterPlacedAt"], values["@afterId"])
            rows = [r for r in rows if (r["placedAt"], r["id"]) < after]
        self.requests += 1
        return rows[: values["@top"]]


class FakePager:
    def __init__(self, fake: FakeContainer, count: int, hook: Any) -> None:
        self.fake, self.count, self.hook = fake, count, hook

    def by_page(self, continuation: str | None) -> Any:
        if continuation is not None and not continuation.isdigit():
            raise CosmosHttpResponseError(
                status_code=400, message="Invalid Continuation Token"
            )
        start = int(continuation or 0)
        self.fake.requests += 1
        count = min(self.count, self.fake.short) if self.fake.short else self.count
        page = self.fake.rows[start : start + count]
        end = start + len(page)
        more = end < len(self.fake.rows) or (self.fake.trailing_token and page)
        self.hook({"x-ms-continuation": str(end) if more else None}, {})
        yield page


def _rows(n: int) -> list[dict[str, Any]]:
    rows = [
        {
            "id": f"o{i:03d}",
            "status": "placed",
            "itemCount": 1,
            "total": 1.5,
            "placedAt": f"2026-11-24T10:00:{i // 2:02d}.000000Z",  # pairs share a time
            "version": 1,
        }
        for i in range(n)
    ]
    return sorted(rows, key=lambda r: (r["placedAt"], r["id"]), reverse=True)


def _walk(pager: Any, query: Any, page_size: int) -> tuple[list[str], list[int]]:
    ids, sizes, token = [], [], None
    while True:
        page = pager(query, page_size, token)
        ids += [item["id"] for item in page.items]
        sizes.append(len(page.items))
        token = page.continuation_token
        if token is None:
            return ids, sizes


@pytest.mark.parametrize("trailing_token", [False, True])
@pytest.mark.parametrize("short", [0, 3])
@pytest.mark.parametrize(
    ("total", "size"), [(45, 7), (42, 7), (7, 7), (0, 5), (1, 100)]
)
def test_single_partition_paging_is_exact(
    monkeypatch, total, size, trailing_token, short
):
    fake = FakeContainer(_rows(total), trailing_token=trailing_token, short=short)
    monkeypatch.setattr(paging, "container", lambda name: fake)
    ids, sizes = _walk(
        paging.single_partition_page, order_search.customer_orders_query("c"), size
    )
    assert ids == [r["id"] for r in fake.rows]
    assert (
        sizes[:-1] == [size] * (len(sizes) - 1) and 0 < sizes[-1] <= size or total == 0
    )
    assert len(sizes) == max(1, -(-total // size))  # never an empty last page


@pytest.mark.parametrize(
    ("total", "size"), [(45, 7), (42, 7), (7, 7), (0, 5), (3, 100)]
)
def test_keyset_paging_is_exact(monkeypatch, total, size):
    fake = FakeContainer(_rows(total))
    monkeypatch.setattr(paging, "container", lambda name: fake)
    ids, sizes = _walk(paging.cross_partition_page, order_search.orders_query(), size)
    assert ids == [r["id"] for r in fake.rows]
    assert len(sizes) == max(1, -(-total // size))
    assert fake.requests == len(sizes)  # one TOP query per page, no peek needed


def test_page_items_have_the_summary_shape(monkeypatch):
    fake = FakeContainer(_rows(3))
    monkeypatch.setattr(paging, "container", lambda name: fake)
    page = paging.cross_partition_page(order_search.orders_query(), 2, None)
    assert list(page.items[0]) == [
        "id",
        "status",
        "itemCount",
        "total",
        "placedAt",
        "version",
    ]
    assert page.as_json()["continuationToken"] == page.continuation_token


def test_a_token_cosmos_refuses_is_a_400(monkeypatch):
    fake = FakeContainer(_rows(10))
    monkeypatch.setattr(paging, "container", lambda name: fake)
    query = order_search.customer_orders_query("c")
    forged = tokens.encode(
        query.fingerprint(), tokens.Position(sdk="not-a-cosmos-token")
    )
    with pytest.raises(ValidationFailed) as refused:
        paging.single_partition_page(query, 5, forged)
    assert refused.value.errors[0].field == "continuationToken"


def test_tokens_do_not_cross_routes_or_paging_kinds(monkeypatch):
    fake = FakeContainer(_rows(10))
    monkeypatch.setattr(paging, "container", lambda name: fake)
    across = paging.cross_partition_page(order_search.orders_query(), 3, None)
    one = paging.single_partition_page(order_search.customer_orders_query("c"), 3, None)
    with pytest.raises(ValidationFailed):
        paging.single_partition_page(
            order_search.customer_orders_query("c"), 3, across.continuation_token
        )
    with pytest.raises(ValidationFailed):
        paging.cross_partition_page(
            order_search.orders_query(), 3, one.continuation_token
        )
    with pytest.raises(ValidationFailed):
        paging.single_partition_page(
            order_search.customer_orders_query("d"), 3, one.continuation_token
        )


def _indexed(container: dict) -> set[str]:
    policy = container["indexingPolicy"]
    paths = {p["path"].removesuffix("/?") for p in policy["includedPaths"]}
    for composite in policy.get("compositeIndexes", []):
        paths |= {part["path"] for part in composite}
    return paths


def test_only_what_queries_filter_or_sort_on_is_indexed():
    """Every property a WHERE or ORDER BY of the code names is indexed in some container,
    and nothing else is: each indexed path costs RUs on every write."""
    sources = [
        p.read_text()
        for folder in ("queries", "sync")
        for p in (Path(__file__).parent.parent / folder).glob("*.py")
    ]
    compared = r"\bc\.(\w+)\s*(?:[=<>]|!=|(?:ASC|DESC)\b)"
    searched = r"(?:CONTAINS|STARTSWITH)\(c\.(\w+)"
    used = {
        "/" + name
        for text in sources
        for pattern in (compared, searched)
        for name in re.findall(pattern, text)
    }
    containers = config.topology()["cosmos"]["containers"]
    # Named through variables: each partition key (`c.{field} = @pk`) and the rename
    # fan-out's guard (`c.{write.guard} < @version`).
    used |= {c["partitionKey"] for c in containers} | {"/customerVersion"}
    indexed = set().union(*(_indexed(c) for c in containers))
    for container in containers:
        assert container["indexingPolicy"]["excludedPaths"] == [{"path": "/*"}]
    # Filter-predicate fields (patch guards) are evaluated on the document, not the index.
    guards = {"/version", "/sequenceNumber"}
    assert used - guards <= indexed, sorted(used - guards - indexed)
    assert indexed <= used, sorted(indexed - used)


def test_read_your_writes_waits_hold_no_thread_and_beyond_the_cap_answer_stale_at_once():
    import asyncio
    import concurrent.futures
    import threading
    import time

    from queries import reads

    reads_by: dict[str, int] = {}
    read_threads: set[int] = set()

    def reader(name: str):
        def read():
            read_threads.add(threading.get_ident())
            reads_by[name] = reads_by.get(name, 0) + 1
            return {"version": 1}

        return read

    def wait(name: str, wait_ms: int = 600):
        return reads.read_with_min_version(reader(name), 2, wait_ms, name, dict)

    async def scene():
        loop_thread = threading.get_ident()
        # Every permitted waiter at once, on one event loop, with ONE thread for the
        # reads: waits that held a thread could not overlap at all.
        asyncio.get_running_loop().set_default_executor(
            concurrent.futures.ThreadPoolExecutor(max_workers=1)
        )
        waiters = [
            asyncio.ensure_future(wait(f"w{i}")) for i in range(reads.MAX_WAITERS)
        ]
        while len(reads_by) < reads.MAX_WAITERS:  # every waiter read once
            await asyncio.sleep(0.005)
        started = time.monotonic()
        late = await wait("late")
        responses = await asyncio.gather(*waiters)
        return loop_thread, late, responses, time.monotonic() - started

    loop_thread, late, responses, waited = asyncio.run(scene())
    assert reads_by["late"] == 1  # no waiting: one read, answered as it stands
    assert late.headers["X-Read-Model-Stale"] == "true"
    # Every permitted waiter re-read with back-off and answered stale when its time ran out.
    assert all(reads_by[f"w{i}"] > 2 for i in range(reads.MAX_WAITERS))
    assert all(r.headers["X-Read-Model-Stale"] == "true" for r in responses)
    # One after another, the waits would take 64 x 0.6 s: they overlapped, on one thread.
    assert waited < 5
    assert loop_thread not in read_threads  # reads never blocked the event loop
