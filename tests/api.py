"""Helpers for tests that drive the API over HTTP: unique data and waiting for projections."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx

from devtools.sample_data import ADDRESS


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def accepted(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 202, response.text
    return response.json()


def customer(
    http: httpx.Client, credit: float = 10_000, name: str | None = None
) -> dict[str, Any]:
    body = {
        "name": name or unique("Customer"),
        "email": f"{unique('c')}@example.com",
        "creditLimit": credit,
    }
    return accepted(http.post("/customers", json=body)) | body


def product(
    http: httpx.Client, price: float = 9.99, stock: int = 100, name: str | None = None
) -> dict[str, Any]:
    body = {
        "sku": unique("SKU"),
        "name": name or unique("Product"),
        "price": price,
        "stock": stock,
    }
    return accepted(http.post("/products", json=body)) | body


def order(
    http: httpx.Client, customer_id: str, lines: list[tuple[str, int]]
) -> dict[str, Any]:
    body = {
        "customerId": customer_id,
        "items": [{"productId": p, "quantity": q} for p, q in lines],
        "shippingAddress": ADDRESS,
    }
    return accepted(http.post("/orders", json=body))


def wait_for(
    http: httpx.Client, path: str, version: int, timeout: float = 10.0
) -> dict[str, Any]:
    """GET a document once the read model has reached `version` (read-your-writes, then polling)."""
    deadline = time.monotonic() + timeout
    while True:
        response = http.get(path, params={"minVersion": version, "waitMs": 2000})
        if (
            response.status_code == 200
            and response.headers.get("X-Read-Model-Stale") != "true"
        ):
            return response.json()
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{path} did not reach version {version}: {response.status_code} {response.text}"
            )
        time.sleep(0.1)
