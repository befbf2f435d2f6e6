"""The walking skeleton over real HTTP: command -> SQL + outbox -> event log -> projection -> Cosmos -> query."""

from __future__ import annotations

import time
from decimal import Decimal

from tests.api import ADDRESS, customer, order, product, unique


def test_an_order_is_readable_within_two_seconds_of_its_202(http):
    buyer = customer(http)
    widget = product(http, price=19.99, stock=10)
    placed = http.post(
        "/orders",
        json={
            "customerId": buyer["id"],
            "items": [{"productId": widget["id"], "quantity": 3}],
            "shippingAddress": ADDRESS,
        },
        headers={"X-Correlation-Id": "e2e-" + unique("corr")},
    )
    accepted_at = time.monotonic()
    assert placed.status_code == 202, placed.text
    body = placed.json()
    assert (
        body["version"] == 1
        and body["status"] == "placed"
        and Decimal(str(body["total"])) == Decimal("59.97")
    )
    assert placed.headers["Location"] == f"/api/orders/{body['id']}"
    assert placed.headers["ETag"] == '"1"'

    while True:
        response = http.get(f"/orders/{body['id']}")
        if response.status_code == 200:
            break
        assert response.status_code == 404
        assert time.monotonic() - accepted_at < 2.0, "not visible within 2 s"
        time.sleep(0.02)
    visible_after = time.monotonic() - accepted_at
    document = response.json()
    assert visible_after < 2.0
    assert response.headers["ETag"] == '"1"'
    assert document["id"] == body["id"]
    assert document["customerId"] == buyer["id"]
    assert document["customer"] == {"name": buyer["name"], "email": buyer["email"]}
    assert document["status"] == "placed"
    assert document["items"] == [
        {
            "productId": widget["id"],
            "sku": widget["sku"],
            "name": widget["name"],
            "unitPrice": 19.99,
            "quantity": 3,
            "lineTotal": 59.97,
        }
    ]
    assert document["itemCount"] == 3 and document["total"] == 59.97
    assert document["shippingAddress"] == ADDRESS
    assert [h["status"] for h in document["history"]] == ["placed"]
    assert document["version"] == 1


def test_correlation_id_is_echoed_or_created(http):
    given = http.get("/health", headers={"X-Correlation-Id": "trace-123"})
    assert given.headers["X-Correlation-Id"] == "trace-123"
    created = http.get("/health")
    assert len(created.headers["X-Correlation-Id"]) == 36


def test_read_your_writes_waits_for_the_version_asked(http):
    buyer = customer(http)
    widget = product(http)
    placed = order(http, buyer["id"], [(widget["id"], 1)])
    response = http.get(
        f"/orders/{placed['id']}", params={"minVersion": 1, "waitMs": 3000}
    )
    assert response.status_code == 200 and response.json()["version"] == 1
    assert "X-Read-Model-Stale" not in response.headers
    stale = http.get(
        f"/orders/{placed['id']}", params={"minVersion": 99, "waitMs": 100}
    )
    assert stale.status_code == 200 and stale.headers["X-Read-Model-Stale"] == "true"


def test_unknown_order_is_404_problem(http):
    response = http.get("/orders/00000000-0000-4000-8000-000000000000")
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert response.json()["status"] == 404


def test_health_and_deep_health(http):
    assert http.get("/health").json() == {"status": "healthy"}
    deep = http.get("/health", params={"deep": "true"})
    assert deep.status_code == 200, deep.text
    assert {name: c["status"] for name, c in deep.json()["checks"].items()} == {
        "sql": "healthy",
        "cosmos": "healthy",
        "events": "healthy",
    }


def test_openapi_lists_every_route(http):
    document = http.get("/openapi.json").json()
    assert document["openapi"] == "3.1.0"
    assert {"post"} <= set(document["paths"]["/orders"])
    assert "get" in document["paths"]["/orders/{orderId}"]
    assert "/{path}" not in document["paths"]


def test_routing_errors_are_problems(http):
    missing = http.get("/no-such-route")
    assert missing.status_code == 404 and missing.json()["title"] == "Not Found"
    wrong_method = http.delete("/customers")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["Allow"] == "POST"
    assert wrong_method.headers["Content-Type"].startswith("application/problem+json")


def test_the_correlation_id_travels_to_the_event_and_the_projected_document(
    http, local_stack
):
    import json
    import sqlite3

    from azure.cosmos import CosmosClient

    correlation = "trace-" + unique("e2e")
    buyer, widget = customer(http), product(http)
    placed = http.post(
        "/orders",
        json={
            "customerId": buyer["id"],
            "items": [{"productId": widget["id"], "quantity": 1}],
            "shippingAddress": ADDRESS,
        },
        headers={"X-Correlation-Id": correlation},
    )
    assert placed.headers["X-Correlation-Id"] == correlation
    order_id = placed.json()["id"]
    conn = sqlite3.connect(local_stack.settings["SQLITE_PATH"])
    (payload,) = conn.execute(
        "SELECT payload FROM outbox WHERE aggregate_id = ?", (order_id,)
    ).fetchone()
    conn.close()
    assert json.loads(payload)["correlationId"] == correlation
    http.get(f"/orders/{order_id}", params={"minVersion": 1, "waitMs": 3000})
    s = local_stack.settings
    orders = CosmosClient(
        s["COSMOS_ENDPOINT"], credential=s["COSMOS_KEY"], connection_verify=False
    )
    document = (
        orders.get_database_client("orders")
        .get_container_client("orders")
        .read_item(order_id, order_id)
    )
    assert document["metadata"]["correlationId"] == correlation
    assert document["metadata"]["eventType"] == "OrderPlaced"
