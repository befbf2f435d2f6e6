"""The query views without HTTP or Azure: a fake container stands in for Cosmos DB."""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from azure.cosmos.exceptions import CosmosResourceNotFoundError

from queries import models, paging, reads, views
from shared.errors import Forbidden, NotFound
from shared.http import Request, parse_query

CUSTOMER_ID = "0c1e6c5e-2f43-4d7b-9a0e-5b0a4c1f2d3e"
ORDER_ID = "7a1d2b3c-4d5e-4f60-8a9b-0c1d2e3f4a5b"
PRODUCT_ID = "1b2c3d4e-5f60-4a7b-8c9d-0e1f2a3b4c5d"


class FakeContainer:
    """Point reads from a dict; every query answers `rows` in one page and is logged."""

    def __init__(self, name: str, model: FakeReadModel) -> None:
        self.name, self.model = name, model

    def read_item(self, item: str, partition_key: Any, **_: Any) -> dict[str, Any]:
        self.model.reads.append((self.name, item))
        try:
            return self.model.documents[(self.name, partition_key, item)]
        except KeyError:
            raise CosmosResourceNotFoundError(status_code=404, message="nope") from None

    def query_items(self, sql: str, parameters: list[dict[str, Any]], **options: Any):
        self.model.queries.append((self.name, sql, parameters, options))
        rows = self.model.rows
        if "response_hook" not in options:
            return rows
        hook = options["response_hook"]

        class Pager:
            def by_page(self, continuation: str | None):
                hook({}, {})
                yield rows

        return Pager()


class FakeReadModel:
    def __init__(self) -> None:
        self.documents: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.rows: list[dict[str, Any]] = []
        self.reads: list[tuple[str, str]] = []
        self.queries: list[tuple[str, str, list[dict[str, Any]], dict[str, Any]]] = []

    def put(self, container: str, document: dict[str, Any], pk: str | None = None):
        self.documents[(container, pk or document["id"], document["id"])] = document

    def container(self, name: str) -> FakeContainer:
        return FakeContainer(name, self)


@pytest.fixture
def cosmos(monkeypatch) -> FakeReadModel:
    model = FakeReadModel()
    monkeypatch.setattr(reads, "container", model.container)
    monkeypatch.setattr(paging, "container", model.container)
    return model


def caller(owner: str | None = None) -> Request:
    return Request("GET", {}, {}, {}, "test", owner=owner)


def params(model: type, **query: str) -> Any:
    return parse_query(model, query)


def customer(owner: str = "sub-ada") -> dict[str, Any]:
    return {
        "id": CUSTOMER_ID,
        "name": "Ada Lovelace",
        "nameSearch": "ada lovelace",
        "email": "ada@example.com",
        "creditLimit": 500,
        "ownerSubject": owner,
        "version": 3,
    }


def order() -> dict[str, Any]:
    return {
        "id": ORDER_ID,
        "version": 2,
        "customer": {
            "name": "Ada Lovelace",
            "email": "ada@example.com",
            "ownerSubject": "sub-ada",
        },
        "order": {
            "id": ORDER_ID,
            "customerId": CUSTOMER_ID,
            "status": "placed",
            "items": [],
            "itemCount": 0,
            "total": 0,
            "shippingAddress": {},
            "trackingNumber": None,
            "cancellationReason": None,
            "placedAt": "2026-11-24T10:00:00.000000Z",
            "updatedAt": "2026-11-24T10:00:00.000000Z",
            "history": [],
        },
    }


def row(number: int) -> dict[str, Any]:
    return {
        "id": f"o{number}",
        "status": "placed",
        "itemCount": 1,
        "total": 1.5,
        "placedAt": f"2026-11-24T10:00:0{number}.000000Z",
        "version": 1,
        "_rid": "cosmos metadata, not part of the summary",
    }


# --- ids and single documents --------------------------------------------------------


def read_one(*args: Any) -> Any:
    """`views.read_one` as the worker runs it: on an event loop."""
    return asyncio.run(views.read_one(*args))


def test_an_id_that_is_not_a_uuid_names_nothing_and_reaches_no_container(cosmos):
    with pytest.raises(NotFound):
        read_one(views.ORDER, "not-a-uuid", params(models.ReadYourWrites), caller())
    assert cosmos.reads == []
    assert views.known_id(ORDER_ID.upper(), "Order") == ORDER_ID


def test_an_order_is_shaped_for_the_api_with_its_version_as_etag(cosmos):
    cosmos.put("orders", order())
    response = read_one(
        views.ORDER, ORDER_ID.upper(), params(models.ReadYourWrites), caller()
    )
    assert response.body == models.order_detail(order())
    assert response.body["changes"] == []
    assert response.headers == {"ETag": '"2"'}


def test_a_self_service_caller_sees_only_their_own_order(cosmos):
    cosmos.put("orders", order())
    ask = params(models.ReadYourWrites)
    assert read_one(views.ORDER, ORDER_ID, ask, caller("sub-ada")).body
    with pytest.raises(NotFound) as refused:
        read_one(views.ORDER, ORDER_ID, ask, caller("sub-bob"))
    assert "or is not projected" not in refused.value.detail  # as if it did not exist


def test_a_missing_document_is_not_projected_yet_and_stale_when_a_version_was_asked(
    cosmos,
):
    with pytest.raises(NotFound) as missing:
        read_one(views.PRODUCT, PRODUCT_ID, params(models.ReadYourWrites), caller())
    assert "not projected yet" in missing.value.detail
    assert missing.value.headers == {}
    with pytest.raises(NotFound) as behind:
        read_one(
            views.PRODUCT,
            PRODUCT_ID,
            params(models.ReadYourWrites, minVersion="1"),
            caller(),
        )
    assert behind.value.headers == {"X-Read-Model-Stale": "true"}


def test_a_customer_carries_the_totals_kept_beside_their_orders(cosmos):
    cosmos.put("customers", customer())
    cosmos.put(
        "customer-orders",
        {"id": "totals", "counters": {"orders": 2, "open": 1, "spentCents": 1050}},
        pk=CUSTOMER_ID,
    )
    body = read_one(
        views.CUSTOMER, CUSTOMER_ID, params(models.ReadYourWrites), caller()
    ).body
    assert body["orderCount"] == 2 and body["openOrderCount"] == 1
    assert body["totalSpent"] == Decimal("10.50")
    assert "ownerSubject" not in body and "nameSearch" not in body


def test_a_product_without_sales_sold_nothing(cosmos):
    cosmos.put(
        "products",
        {
            "id": PRODUCT_ID,
            "sku": "W-1",
            "name": "Widget",
            "price": 2.5,
            "stock": 4,
            "version": 1,
        },
    )
    body = read_one(
        views.PRODUCT, PRODUCT_ID, params(models.ReadYourWrites), caller()
    ).body
    assert (body["unitsSold"], body["revenue"]) == (0, Decimal("0.00"))


# --- order lists ---------------------------------------------------------------------


def test_a_customers_orders_are_summaries_from_their_partition(cosmos):
    cosmos.rows = [row(2), row(1)]
    page = views.customer_orders(
        CUSTOMER_ID, params(models.CustomerOrdersParams), caller()
    )
    assert [item["id"] for item in page["items"]] == ["o2", "o1"]
    assert "_rid" not in page["items"][0] and page["continuationToken"] is None
    [(container, _, _, options)] = cosmos.queries
    assert container == "customer-orders" and options["partition_key"] == CUSTOMER_ID


def test_no_orders_of_an_unknown_customer_is_a_404(cosmos):
    with pytest.raises(NotFound) as missing:
        views.customer_orders(
            CUSTOMER_ID, params(models.CustomerOrdersParams), caller()
        )
    assert "not projected yet" in missing.value.detail
    cosmos.put("customers", customer())
    page = views.customer_orders(
        CUSTOMER_ID, params(models.CustomerOrdersParams), caller()
    )
    assert page == {"items": [], "continuationToken": None}


def test_self_service_search_needs_the_callers_own_customer_id(cosmos):
    cosmos.put("customers", customer())
    with pytest.raises(Forbidden):
        views.search_orders(params(models.OrderSearchParams), caller("sub-ada"))
    with pytest.raises(NotFound):
        views.search_orders(
            params(models.OrderSearchParams, customerId=CUSTOMER_ID),
            caller("sub-bob"),
        )
    views.search_orders(
        params(models.OrderSearchParams, customerId=CUSTOMER_ID), caller("sub-ada")
    )
    assert cosmos.queries[-1][0] == "customer-orders"


def test_search_across_customers_is_one_keyset_query_over_orders(cosmos):
    cosmos.rows = [row(1)]
    page = views.search_orders(
        params(models.OrderSearchParams, q="Ada", status="placed"), caller()
    )
    assert [item["id"] for item in page["items"]] == ["o1"]
    [(container, sql, parameters, options)] = cosmos.queries
    assert container == "orders" and options["enable_cross_partition_query"]
    assert "CONTAINS(c.customerSearch, @q)" in sql
    assert {"name": "@q", "value": "ada"} in parameters


def test_q_naming_the_customer_matches_all_their_orders(cosmos):
    cosmos.put("customers", customer())
    views.search_orders(
        params(models.OrderSearchParams, customerId=CUSTOMER_ID, q="lovelace"),
        caller(),
    )
    views.search_orders(
        params(models.OrderSearchParams, customerId=CUSTOMER_ID, q="widget"),
        caller(),
    )
    by_name, by_product = (sql for _, sql, _, _ in cosmos.queries)
    assert "CONTAINS" not in by_name
    assert "CONTAINS(c.productSearch, @q)" in by_product


def test_searching_a_customer_that_cannot_exist_reads_nothing(cosmos):
    empty = {"items": [], "continuationToken": None}
    assert (
        views.search_orders(
            params(models.OrderSearchParams, customerId="nobody"), caller()
        )
        == empty
    )
    assert (
        views.search_orders(
            params(models.OrderSearchParams, customerId=CUSTOMER_ID, q="x"), caller()
        )
        == empty
    )
    assert cosmos.queries == []


# --- statistics ----------------------------------------------------------------------


def test_sales_stats_read_the_days_totals_across_partitions(cosmos):
    cosmos.rows = [
        {"day": "2026-11-02", "counters": {"orders": 3, "revenueCents": 1234}},
    ]
    stats = views.sales_stats(date(2026, 11, 1), date(2026, 11, 2))
    assert [day["orders"] for day in stats["days"]] == [0, 3]
    assert stats["totals"]["revenue"] == Decimal("12.34")
    [(container, sql, parameters, options)] = cosmos.queries
    assert container == "daily-sales" and sql == views.DAILY_TOTALS
    assert options["enable_cross_partition_query"]
    assert {p["name"]: p["value"] for p in parameters} == {
        "@totals": "totals",
        "@shards": 4,
        "@from": "2026-11-01",
        "@to": "2026-11-02",
    }


def test_the_stats_range_is_read_from_the_parameters():
    ask = params(models.SalesStatsParams, **{"from": "2026-11-01", "to": "2026-11-03"})
    assert ask.days() == (date(2026, 11, 1), date(2026, 11, 3))


def test_instants_keep_four_digit_years_so_text_order_is_time_order(cosmos):
    # placedAt is compared as text: a year before 1000 must not lose its leading zero.
    views.search_orders(
        params(models.OrderSearchParams, placedTo="0999-12-31", maxTotal="2.00"),
        caller(),
    )
    [(_, _, parameters, _)] = cosmos.queries
    values = {p["name"]: p["value"] for p in parameters}
    assert values["@placedTo"] == "0999-12-31T23:59:59.999999Z"
    assert values["@maxTotal"] == 2  # 2.00 and 2 are one filter (and one fingerprint)
