"""Hostile or odd input gets a clear 4xx problem and changes nothing: never a 5xx."""

from __future__ import annotations

import base64
import json
import time

import pytest

from tests.api import customer, order, product


def assert_problem(response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")


def test_deeply_nested_json_is_400(http):
    body = b"[" * 30_000 + b"]" * 30_000
    assert_problem(
        http.post(
            "/customers", content=body, headers={"Content-Type": "application/json"}
        ),
        400,
    )


@pytest.mark.parametrize("etag", ['"' + "9" * 5000 + '"', '"\u00b2"', '"-1"', '"1.5"'])
def test_odd_if_match_is_400(http, etag):
    c = customer(http)
    # Sent as UTF-8 bytes: the client would refuse to encode a non-ASCII header itself.
    headers = {"If-Match": etag.encode()}
    assert_problem(
        http.patch(f"/customers/{c['id']}", json={"name": "x"}, headers=headers), 400
    )


def test_text_is_measured_as_the_database_measures_it(http):
    too_long = {"name": "\U0001f600" * 200, "email": "e@example.com", "creditLimit": 1}
    assert_problem(http.post("/customers", json=too_long), 400)
    fits = customer(http, name="\U0001f600" * 100)
    assert fits["version"] == 1


def test_stock_can_grow_past_32_bits(http):
    p = product(http, stock=1_000_000_000)
    for _ in range(3):
        response = http.post(
            f"/products/{p['id']}/stock", json={"delta": 1_000_000_000}
        )
        assert response.status_code == 202, response.text
    assert response.json()["stock"] == 4_000_000_000


@pytest.mark.parametrize(
    "params",
    [
        {"placedFrom": "0001-01-01T00:00:00+14:00"},
        {"placedTo": "9999-12-31T23:59:59-05:00"},
        {"minTotal": "1e1000000"},
        {"maxTotal": "12345678901234567890"},
        {"customerId": "not-a-uuid\u0000"},
    ],
)
def test_odd_query_parameters_are_400_or_empty(http, params):
    response = http.get("/orders", params=params)
    if "customerId" in params:
        assert response.status_code == 200 and response.json()["items"] == []
    else:
        assert_problem(response, 400)


def test_a_forged_continuation_token_is_400(http):
    c, p = customer(http), product(http)
    for _ in range(3):
        order(http, c["id"], [(p["id"], 1)])
    deadline = time.monotonic() + 10
    # 404 until the customer is projected, then fewer items until the orders are.
    while len(http.get(f"/customers/{c['id']}/orders").json().get("items", [])) < 3:
        assert time.monotonic() < deadline, "orders not projected"
        time.sleep(0.05)
    first = http.get(f"/customers/{c['id']}/orders", params={"pageSize": 1})
    token = first.json()["continuationToken"]
    assert token
    body = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    body["s"] = "forged\r\nX-Injected: 1"
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")
    assert_problem(
        http.get(
            f"/customers/{c['id']}/orders",
            params={"pageSize": 1, "continuationToken": forged},
        ),
        400,
    )


@pytest.mark.parametrize("path", ["/orders/%00", "/customers/..", "/products/x%2Fy"])
def test_odd_ids_are_404(http, path):
    assert_problem(http.get(path), 404)


def test_correlation_ids_that_could_poison_headers_are_replaced(http):
    response = http.get("/health", headers={"X-Correlation-Id": "caf\u00e9".encode()})
    assert (
        response.headers["X-Correlation-Id"] != "caf\u00e9"
        and len(response.headers["X-Correlation-Id"]) == 36
    )
