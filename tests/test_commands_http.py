"""Every command route over real HTTP: happy paths, each documented error, versions, idempotency,
If-Match, and concurrency (stock and status transitions under parallel requests)."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.api import ADDRESS, accepted, customer, order, product, unique, wait_for


@pytest.fixture(scope="module")
def sql(local_stack):
    conn = sqlite3.connect(local_stack.settings["SQLITE_PATH"], timeout=30)
    yield lambda query, *params: conn.execute(query, params).fetchall()
    conn.close()


def problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


def fields(body: dict) -> set[str]:
    return {e["field"] for e in body.get("errors", [])}


# --- customers ----------------------------------------------------------------------------


def test_register_customer_and_change_it_version_by_version(http, sql):
    c = customer(http, credit=500)
    assert c["version"] == 1
    changed = http.patch(f"/customers/{c['id']}", json={"name": "Grace Hopper"})
    assert accepted(changed)["version"] == 2 and changed.headers["ETag"] == '"2"'
    assert (
        accepted(http.patch(f"/customers/{c['id']}", json={"creditLimit": 750.5}))[
            "version"
        ]
        == 3
    )
    assert sql(
        "SELECT name, credit_limit_cents, version FROM customers WHERE id = ?", c["id"]
    ) == [("Grace Hopper", 75050, 3)]
    types = [
        t
        for (t,) in sql(
            "SELECT event_type FROM outbox WHERE aggregate_id = ? ORDER BY position",
            c["id"],
        )
    ]
    assert types == ["CustomerRegistered", "CustomerChanged", "CustomerChanged"]


@pytest.mark.parametrize(
    ("body", "bad_fields"),
    [
        ({"name": "A", "email": "a@example.com"}, {"creditLimit"}),
        ({"name": "A", "email": "not-an-email", "creditLimit": 1}, {"email"}),
        ({"name": "A", "email": "a@example.com", "creditLimit": -1}, {"creditLimit"}),
        (
            {"name": "A", "email": "a@example.com", "creditLimit": 1.001},
            {"creditLimit"},
        ),
        (
            {"name": "A", "email": "a@example.com", "creditLimit": "100"},
            {"creditLimit"},
        ),
        ({"name": 5, "email": "a@example.com", "creditLimit": 1}, {"name"}),
        (
            {"name": "A", "email": "a@example.com", "creditLimit": 1, "vip": True},
            {"vip"},
        ),
    ],
)
def test_register_customer_validation(http, sql, body, bad_fields):
    before = sql("SELECT COUNT(*) FROM outbox")
    assert fields(problem(http.post("/customers", json=body), 400)) == bad_fields
    assert sql("SELECT COUNT(*) FROM outbox") == before


def test_email_is_unique_case_insensitively(http):
    c = customer(http)
    problem(
        http.post(
            "/customers",
            json={"name": "X", "email": c["email"].upper(), "creditLimit": 1},
        ),
        409,
    )
    other = customer(http)
    problem(http.patch(f"/customers/{other['id']}", json={"email": c["email"]}), 409)


def test_malformed_json_wrong_media_type_and_oversized_bodies(http):
    problem(
        http.post(
            "/customers", content=b"{nope", headers={"Content-Type": "application/json"}
        ),
        400,
    )
    problem(
        http.post(
            "/customers", content=b"[]", headers={"Content-Type": "application/json"}
        ),
        400,
    )
    problem(
        http.post(
            "/customers",
            content=b'{"name": "x"}',
            headers={"Content-Type": "text/plain"},
        ),
        415,
    )
    big = b'{"name": "' + b"x" * 70_000 + b'"}'
    problem(
        http.post(
            "/customers", content=big, headers={"Content-Type": "application/json"}
        ),
        413,
    )


def test_patch_customer_errors(http):
    c = customer(http)
    problem(http.patch(f"/customers/{c['id']}", json={}), 400)
    problem(http.patch(f"/customers/{c['id']}", json={"name": None}), 400)
    problem(
        http.patch(
            "/customers/00000000-0000-4000-8000-000000000000", json={"name": "x"}
        ),
        404,
    )
    problem(http.patch("/customers/not-a-uuid", json={"name": "x"}), 404)


def test_if_match_refuses_a_stale_version_with_412(http, sql):
    c = customer(http)
    stale = http.patch(
        f"/customers/{c['id']}", json={"name": "B"}, headers={"If-Match": '"7"'}
    )
    assert problem(stale, 412) and stale.headers["ETag"] == '"1"'
    ok = http.patch(
        f"/customers/{c['id']}", json={"name": "B"}, headers={"If-Match": '"1"'}
    )
    assert accepted(ok)["version"] == 2
    problem(
        http.patch(
            f"/customers/{c['id']}", json={"name": "C"}, headers={"If-Match": "banana"}
        ),
        400,
    )
    assert sql("SELECT version FROM customers WHERE id = ?", c["id"]) == [(2,)]


# --- products -----------------------------------------------------------------------------


def test_products_create_change_and_adjust_stock(http, sql):
    p = product(http, price=5.25, stock=3)
    assert (
        accepted(
            http.patch(f"/products/{p['id']}", json={"price": 6.5, "name": "Better"})
        )["version"]
        == 2
    )
    adjusted = accepted(http.post(f"/products/{p['id']}/stock", json={"delta": -3}))
    assert adjusted == {"id": p["id"], "version": 3, "stock": 0}
    problem(http.post(f"/products/{p['id']}/stock", json={"delta": -1}), 409)
    assert (
        accepted(http.post(f"/products/{p['id']}/stock", json={"delta": 4}))["stock"]
        == 4
    )
    assert sql(
        "SELECT name, price_cents, stock, version FROM products WHERE id = ?", p["id"]
    ) == [("Better", 650, 4, 4)]


@pytest.mark.parametrize(
    "body",
    [
        {"sku": "X", "name": "n", "price": 0, "stock": 1},
        {"sku": "X", "name": "n", "price": 1, "stock": -1},
        {"sku": "X", "name": "n", "price": 1, "stock": 1.5},
        {"sku": "X", "name": "n", "price": 1, "stock": "1"},
        {"sku": "", "name": "n", "price": 1, "stock": 1},
        {"sku": "X", "name": "n", "price": 1},
    ],
)
def test_create_product_validation(http, body):
    problem(http.post("/products", json=body), 400)


def test_sku_is_unique_and_product_errors(http):
    p = product(http)
    problem(
        http.post(
            "/products", json={"sku": p["sku"], "name": "again", "price": 1, "stock": 1}
        ),
        409,
    )
    problem(http.patch(f"/products/{p['id']}", json={"price": -2}), 400)
    problem(http.patch(f"/products/{p['id']}", json={"sku": "NEW"}), 400)
    problem(http.post(f"/products/{p['id']}/stock", json={"delta": 0}), 400)
    problem(http.post(f"/products/{p['id']}/stock", json={"delta": "5"}), 400)
    problem(
        http.post(
            "/products/00000000-0000-4000-8000-000000000000/stock", json={"delta": 1}
        ),
        404,
    )


# --- orders -------------------------------------------------------------------------------


def test_order_lifecycle_versions_and_totals(http, sql):
    c = customer(http)
    a, b = product(http, price=2.50, stock=10), product(http, price=1.10, stock=10)
    o = order(http, c["id"], [(a["id"], 2)])
    assert (o["version"], o["total"], o["status"]) == (1, 5.0, "placed")
    added = accepted(
        http.post(
            f"/orders/{o['id']}/items", json={"productId": b["id"], "quantity": 3}
        )
    )
    assert (added["version"], added["total"]) == (2, 8.3)
    more = accepted(
        http.post(
            f"/orders/{o['id']}/items", json={"productId": a["id"], "quantity": 1}
        )
    )
    assert (more["version"], more["total"]) == (
        3,
        10.8,
    )  # same product adds to its line
    removed = accepted(http.delete(f"/orders/{o['id']}/items/{b['id']}"))
    assert (removed["version"], removed["total"]) == (4, 7.5)
    moved = accepted(
        http.put(
            f"/orders/{o['id']}/shipping-address",
            json={**ADDRESS, "city": "Shelbyville"},
        )
    )
    assert moved["version"] == 5
    shipped = accepted(
        http.post(f"/orders/{o['id']}/ship", json={"trackingNumber": "1Z999"})
    )
    assert (shipped["version"], shipped["status"]) == (6, "shipped")
    delivered = accepted(http.post(f"/orders/{o['id']}/deliver"))
    assert (delivered["version"], delivered["status"]) == (7, "delivered")
    assert sql("SELECT stock FROM products WHERE id = ?", a["id"]) == [(7,)]
    assert sql("SELECT stock FROM products WHERE id = ?", b["id"]) == [
        (10,)
    ]  # released on removal
    document = wait_for(http, f"/orders/{o['id']}", 7)
    assert document["status"] == "delivered" and document["trackingNumber"] == "1Z999"
    assert document["shippingAddress"]["city"] == "Shelbyville"
    assert [h["status"] for h in document["history"]] == [
        "placed",
        "shipped",
        "delivered",
    ]
    assert [(i["productId"], i["quantity"]) for i in document["items"]] == [
        (a["id"], 3)
    ]


def test_cancel_releases_stock_and_credit(http, sql):
    c = customer(http, credit=100)
    p = product(http, price=40, stock=5)
    o = order(http, c["id"], [(p["id"], 2)])
    problem(
        http.post(
            "/orders",
            json={
                "customerId": c["id"],
                "items": [{"productId": p["id"], "quantity": 1}],
                "shippingAddress": ADDRESS,
            },
        ),
        409,
    )  # 80 + 40 > 100
    cancelled = accepted(
        http.post(f"/orders/{o['id']}/cancel", json={"reason": "changed my mind"})
    )
    assert cancelled["status"] == "cancelled" and cancelled["version"] == 2
    assert sql("SELECT stock FROM products WHERE id = ?", p["id"]) == [(5,)]
    assert sql("SELECT open_orders_cents FROM customers WHERE id = ?", c["id"]) == [
        (0,)
    ]
    order(http, c["id"], [(p["id"], 2)])  # the credit is free again


def test_order_validation_and_rules(http):
    c, p = customer(http, credit=50), product(http, price=10, stock=3)
    line = {"productId": p["id"], "quantity": 1}
    cases = [
        ({"customerId": c["id"], "items": [], "shippingAddress": ADDRESS}, 400),
        (
            {"customerId": c["id"], "items": [line] * 51, "shippingAddress": ADDRESS},
            400,
        ),
        (
            {
                "customerId": c["id"],
                "items": [{**line, "quantity": 0}],
                "shippingAddress": ADDRESS,
            },
            400,
        ),
        (
            {
                "customerId": c["id"],
                "items": [{**line, "quantity": 1001}],
                "shippingAddress": ADDRESS,
            },
            400,
        ),
        (
            {
                "customerId": c["id"],
                "items": [{**line, "price": 0.01}],
                "shippingAddress": ADDRESS,
            },
            400,
        ),
        (
            {
                "customerId": c["id"],
                "items": [line],
                "shippingAddress": {**ADDRESS, "city": ""},
            },
            400,
        ),
        ({"customerId": c["id"], "items": [line]}, 400),
        (
            {
                "customerId": "00000000-0000-4000-8000-000000000000",
                "items": [line],
                "shippingAddress": ADDRESS,
            },
            400,
        ),
        (
            {
                "customerId": c["id"],
                "items": [
                    {"productId": "00000000-0000-4000-8000-000000000000", "quantity": 1}
                ],
                "shippingAddress": ADDRESS,
            },
            400,
        ),
        (
            {
                "customerId": c["id"],
                "items": [{**line, "quantity": 4}],
                "shippingAddress": ADDRESS,
            },
            409,
        ),
        (
            {
                "customerId": c["id"],
                "items": [{**line, "quantity": 3}],
                "shippingAddress": ADDRESS,
            },
            201,
        ),
    ]
    for body, status in cases:
        if status == 201:
            # 3 x 10 = 30 <= 50: accepted
            accepted(http.post("/orders", json=body))
        else:
            problem(http.post("/orders", json=body), status)


def test_illegal_transitions_and_item_rules_are_409(http):
    c = customer(http)
    p, q = product(http, stock=10), product(http, stock=10)
    o = order(http, c["id"], [(p["id"], 1)])
    problem(http.delete(f"/orders/{o['id']}/items/{p['id']}"), 409)  # the last line
    problem(http.delete(f"/orders/{o['id']}/items/{q['id']}"), 404)  # not on the order
    problem(http.post(f"/orders/{o['id']}/deliver"), 409)  # not shipped yet
    accepted(http.post(f"/orders/{o['id']}/ship", json={"trackingNumber": "T"}))
    problem(http.post(f"/orders/{o['id']}/ship", json={"trackingNumber": "T"}), 409)
    problem(http.post(f"/orders/{o['id']}/cancel", json={"reason": "late"}), 409)
    problem(
        http.post(
            f"/orders/{o['id']}/items", json={"productId": q["id"], "quantity": 1}
        ),
        409,
    )
    problem(http.put(f"/orders/{o['id']}/shipping-address", json=ADDRESS), 409)
    problem(http.post(f"/orders/{o['id']}/ship", json={}), 400)
    problem(
        http.post(
            "/orders/00000000-0000-4000-8000-000000000000/ship",
            json={"trackingNumber": "T"},
        ),
        404,
    )
    problem(http.post(f"/orders/{o['id']}/deliver", json={"unexpected": 1}), 400)


# --- idempotency --------------------------------------------------------------------------


def test_idempotency_key_replays_the_first_response_and_writes_nothing(http, sql):
    key = unique("key")
    body = {"sku": unique("SKU"), "name": "Idem", "price": 3, "stock": 1}
    first = http.post("/products", json=body, headers={"Idempotency-Key": key})
    rows = sql("SELECT COUNT(*) FROM outbox")
    again = http.post("/products", json=body, headers={"Idempotency-Key": key})
    assert again.status_code == 202 and again.json() == first.json()
    assert (
        again.headers["Location"] == first.headers["Location"]
        and again.headers["ETag"] == first.headers["ETag"]
    )
    assert sql("SELECT COUNT(*) FROM outbox") == rows
    assert sql("SELECT COUNT(*) FROM products WHERE sku = ?", body["sku"]) == [(1,)]
    reused = http.post(
        "/products", json={**body, "price": 4}, headers={"Idempotency-Key": key}
    )
    problem(reused, 422)
    assert sql("SELECT COUNT(*) FROM outbox") == rows


def test_idempotency_key_on_an_existing_aggregate(http, sql):
    c, p = customer(http), product(http, stock=5)
    o = order(http, c["id"], [(p["id"], 1)])
    key = unique("ship")
    first = http.post(
        f"/orders/{o['id']}/ship",
        json={"trackingNumber": "X1"},
        headers={"Idempotency-Key": key},
    )
    again = http.post(
        f"/orders/{o['id']}/ship",
        json={"trackingNumber": "X1"},
        headers={"Idempotency-Key": key},
    )
    assert accepted(first) == accepted(again) and first.json()["version"] == 2
    assert sql("SELECT version FROM orders WHERE id = ?", o["id"]) == [(2,)]


def test_concurrent_requests_with_one_key_write_once(http, sql):
    key = unique("race")
    body = {"name": "Racer", "email": f"{unique('r')}@example.com", "creditLimit": 1}
    with ThreadPoolExecutor(8) as pool:
        responses = list(
            pool.map(
                lambda _: http.post(
                    "/customers", json=body, headers={"Idempotency-Key": key}
                ),
                range(8),
            )
        )
    assert {r.status_code for r in responses} == {202}
    assert len({r.json()["id"] for r in responses}) == 1
    assert sql("SELECT COUNT(*) FROM customers WHERE email = ?", body["email"]) == [
        (1,)
    ]


# --- concurrency --------------------------------------------------------------------------


def test_25_concurrent_orders_against_stock_10(http, sql):
    p = product(http, price=1, stock=10)
    customers = [customer(http) for _ in range(5)]
    with ThreadPoolExecutor(25) as pool:
        responses = list(
            pool.map(
                lambda i: http.post(
                    "/orders",
                    json={
                        "customerId": customers[i % 5]["id"],
                        "items": [{"productId": p["id"], "quantity": 1}],
                        "shippingAddress": ADDRESS,
                    },
                ),
                range(25),
            )
        )
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(202) == 10 and statuses.count(409) == 15, statuses
    assert sql("SELECT stock, version FROM products WHERE id = ?", p["id"]) == [(0, 11)]
    first = next(r for r in responses if r.status_code == 202).json()
    assert wait_for(http, f"/orders/{first['id']}", 1)["status"] == "placed"


def test_concurrent_ship_and_cancel_exactly_one_wins(http, sql):
    c, p = customer(http), product(http, stock=50)
    for _ in range(5):
        o = order(http, c["id"], [(p["id"], 1)])
        calls = [
            (f"/orders/{o['id']}/ship", {"trackingNumber": "T"}),
            (f"/orders/{o['id']}/cancel", {"reason": "r"}),
        ]
        with ThreadPoolExecutor(6) as pool:
            responses = list(
                pool.map(lambda call: http.post(call[0], json=call[1]), calls * 3)
            )
        wins = [r for r in responses if r.status_code == 202]
        assert len(wins) == 1, [r.status_code for r in responses]
        assert all(r.status_code == 409 for r in responses if r.status_code != 202)
        status, version = sql(
            "SELECT status, version FROM orders WHERE id = ?", o["id"]
        )[0]
        assert (status, version) == (wins[0].json()["status"], 2)


# --- what the OpenAPI document promises (a schema-valid request is accepted) -------------


def test_an_integral_number_is_an_integer_and_a_fraction_is_not(http):
    # JSON Schema counts 1.0 as an integer, so a client generated from the document may send it.
    p = accepted(
        http.post(
            "/products",
            content=f'{{"sku": "{unique("SKU")}", "name": "n", "price": 1, "stock": 5.0}}',
            headers={"Content-Type": "application/json"},
        )
    )
    stock = http.post(
        f"/products/{p['id']}/stock",
        content='{"delta": 2.00}',
        headers={"Content-Type": "application/json"},
    )
    assert accepted(stock)["stock"] == 7
    body = problem(
        http.post(
            f"/products/{p['id']}/stock",
            content='{"delta": 1.5}',
            headers={"Content-Type": "application/json"},
        ),
        400,
    )
    assert fields(body) == {"delta"}


def test_null_blank_and_zero_are_refused_per_field(http):
    c = customer(http)
    body = problem(http.patch(f"/customers/{c['id']}", json={"email": None}), 400)
    assert body["errors"] == [
        {
            "field": "email",
            "message": "must not be null; leave the field out to keep it",
        }
    ]
    body = problem(
        http.patch(f"/customers/{c['id']}", json={"name": "\u3000\u0085"}), 400
    )
    assert fields(body) == {"name"}
    p = product(http)
    # A zero delta is refused by the body's rule, before the product is even looked up.
    body = problem(
        http.post(
            "/products/00000000-0000-4000-8000-000000000000/stock", json={"delta": 0}
        ),
        400,
    )
    assert body["errors"] == [{"field": "delta", "message": "must not be 0"}]
    assert accepted(http.patch(f"/products/{p['id']}", json={"name": "  Trimmed  "}))


def test_a_line_grown_past_1000_by_add_item_is_a_409(http):
    c = customer(http, credit=1_000_000)
    p = product(http, price=1, stock=5000)
    o = order(http, c["id"], [(p["id"], 600)])
    line = {"productId": p["id"], "quantity": 401}
    problem(http.post(f"/orders/{o['id']}/items", json=line), 409)
    assert accepted(
        http.post(f"/orders/{o['id']}/items", json={**line, "quantity": 400})
    )


@pytest.mark.parametrize("key", ["caf\u00e9", "tab\there", "x" * 201])
def test_an_idempotency_key_outside_printable_ascii_is_400(http, key):
    body = {"name": "n", "email": f"{unique('c')}@example.com", "creditLimit": 1}
    response = http.post(
        "/customers", json=body, headers={"Idempotency-Key": key.encode("latin-1")}
    )
    problem(response, 400)
