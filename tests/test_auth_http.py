"""Who may do what, over HTTP on the local stack: tokens, app roles and ownership.

The expected matrix is written here from the contract (docs/api.md, README "Roles"),
not read from the routes' own declarations, so a route given the wrong roles fails.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sqlite3
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from devtools import dev_issuer
from shared.auth import ADMIN, CATALOG, CUSTOMER, FULFILLMENT, ROLES, SUPPORT
from shared.eventlog import LocalEventLog
from tests.api import ADDRESS, accepted, customer, order, product, wait_for

NO_ROLE = "(no role)"

# route -> the roles that may call it (Orders.Customer on its own records).
EXPECTED: dict[tuple[str, str], set[str]] = {
    ("POST", "/customers"): {ADMIN, CUSTOMER},
    ("PATCH", "/customers/{customer}"): {ADMIN, CUSTOMER},
    ("POST", "/products"): {ADMIN, CATALOG},
    ("PATCH", "/products/{product}"): {ADMIN, CATALOG},
    ("POST", "/products/{product}/stock"): {ADMIN, CATALOG},
    ("POST", "/orders"): {ADMIN, CUSTOMER},
    ("POST", "/orders/{order}/items"): {ADMIN, CUSTOMER},
    ("DELETE", "/orders/{order}/items/{product}"): {ADMIN, CUSTOMER},
    ("PUT", "/orders/{order}/shipping-address"): {ADMIN, CUSTOMER},
    ("POST", "/orders/{order}/ship"): {ADMIN, FULFILLMENT},
    ("POST", "/orders/{order}/deliver"): {ADMIN, FULFILLMENT},
    ("POST", "/orders/{order}/cancel"): {ADMIN, CUSTOMER},
    ("GET", "/orders/{order}"): {ADMIN, FULFILLMENT, SUPPORT, CUSTOMER},
    ("GET", "/customers/{customer}"): {ADMIN, FULFILLMENT, SUPPORT, CUSTOMER},
    ("GET", "/customers/{customer}/orders"): {ADMIN, FULFILLMENT, SUPPORT, CUSTOMER},
    ("GET", "/orders?customerId={customer}"): {ADMIN, FULFILLMENT, SUPPORT, CUSTOMER},
    ("GET", "/orders"): {ADMIN, FULFILLMENT, SUPPORT},
    ("GET", "/products/{product}"): {ADMIN, CATALOG, SUPPORT, CUSTOMER},
    ("GET", "/stats/sales?from=2026-01-01&to=2026-01-02"): {ADMIN, CATALOG, SUPPORT},
    ("GET", "/projections"): {ADMIN, SUPPORT},
    ("POST", "/projections/order-detail/redrive"): {ADMIN},
    ("GET", "/health?deep=true"): {ADMIN},
}

BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/customers"): lambda: {
        "name": "Matrix",
        "email": f"m-{uuid.uuid4().hex[:8]}@example.com",
        "creditLimit": 100,
    },
    ("PATCH", "/customers/{customer}"): lambda: {"name": "Renamed"},
    ("POST", "/products"): lambda: {
        "sku": f"M-{uuid.uuid4().hex[:8]}",
        "name": "Matrix product",
        "price": 1,
        "stock": 1,
    },
    ("PATCH", "/products/{product}"): lambda: {"name": "Renamed product"},
    ("POST", "/products/{product}/stock"): lambda: {"delta": 1},
    ("POST", "/orders/{order}/items"): lambda: {
        "productId": "{product}",
        "quantity": 1,
    },
    ("PUT", "/orders/{order}/shipping-address"): lambda: ADDRESS,
    ("POST", "/orders/{order}/ship"): lambda: {"trackingNumber": "T-1"},
    ("POST", "/orders/{order}/cancel"): lambda: {"reason": "matrix"},
}


def bearer(
    local_stack, roles: tuple[str, ...] | list[str], subject: str
) -> dict[str, str]:
    return {"Authorization": f"Bearer {local_stack.token(tuple(roles), subject)}"}


@pytest.fixture(scope="module")
def shopper(http, local_stack) -> dict[str, Any]:
    """A self-service customer (subject `shopper-1`) with a product and an order of theirs."""
    subject = f"shopper-{uuid.uuid4().hex[:8]}"
    headers = bearer(local_stack, [CUSTOMER], subject)
    mine = accepted(
        http.post(
            "/customers",
            json={
                "name": "Shopper",
                "email": f"{subject}@example.com",
                "creditLimit": 10_000,
            },
            headers=headers,
        )
    )
    p = product(http, stock=500)
    placed = accepted(
        http.post(
            "/orders",
            json={
                "customerId": mine["id"],
                "items": [{"productId": p["id"], "quantity": 1}],
                "shippingAddress": ADDRESS,
            },
            headers=headers,
        )
    )
    wait_for(http, f"/orders/{placed['id']}", placed["version"])
    wait_for(http, f"/customers/{mine['id']}", 1)
    return {
        "subject": subject,
        "headers": headers,
        "customer": mine["id"],
        "product": p["id"],
        "order": placed["id"],
    }


def call(
    http: httpx.Client, route: tuple[str, str], ids: dict[str, str], headers: dict
) -> httpx.Response:
    method, template = route
    path = template.format(**ids)
    body = BODIES.get(route)
    payload = (
        json.loads(json.dumps(body()).replace("{product}", ids["product"]))
        if body
        else None
    )
    return http.request(
        method,
        path,
        json=payload,
        headers={**headers, "Idempotency-Key": uuid.uuid4().hex}
        if method != "GET"
        else headers,
    )


@pytest.mark.parametrize("role", [*ROLES, NO_ROLE])
def test_the_role_matrix(http, local_stack, shopper, role):
    """Every route, every role: allowed answers are neither 401 nor 403, refused ones 403."""
    roles = () if role == NO_ROLE else (role,)
    # The customer role acts on its own records; staff roles on the same ones.
    subject = shopper["subject"] if role == CUSTOMER else f"staff-{role}"
    headers = bearer(local_stack, roles, subject)
    ids = {k: shopper[k] for k in ("customer", "product", "order")}
    answers = {}
    for route, allowed in EXPECTED.items():
        if route == ("POST", "/customers") and role == CUSTOMER:
            continue  # registered already by the fixture: that case has its own test
        response = call(http, route, ids, headers)
        answers[route] = response.status_code
        if role in allowed:
            assert response.status_code not in (401, 403), (role, route, response.text)
        else:
            assert response.status_code == 403, (role, route, response.text)
            assert response.headers["content-type"].startswith(
                "application/problem+json"
            )
    assert answers


def test_every_route_of_the_app_is_in_the_matrix(http):
    document = http.get("/openapi.json").json()
    operations = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method, op in item.items()
        if op.get("security") != []
    }
    templated = {
        (
            m,
            p.split("?")[0]
            .replace("{customer}", "{customerId}")
            .replace("{product}", "{productId}")
            .replace("{order}", "{orderId}")
            .replace("order-detail", "{name}"),
        )
        for m, p in EXPECTED
        if not p.startswith("/health")  # anonymous, but ?deep=true is for admins
    }
    assert operations == templated
    for item in document["paths"].values():
        for op in item.values():
            if op.get("security") != []:
                assert op["security"] == [{"entraId": []}] and op["x-roles"]


def test_a_customer_cannot_reach_another_customers_records(http, local_stack, shopper):
    other_subject = f"other-{uuid.uuid4().hex[:8]}"
    other = bearer(local_stack, [CUSTOMER], other_subject)
    theirs = accepted(
        http.post(
            "/customers",
            json={
                "name": "Other",
                "email": f"{other_subject}@example.com",
                "creditLimit": 50,
            },
            headers=other,
        )
    )
    mine = shopper["headers"]
    for path in (
        f"/customers/{theirs['id']}",
        f"/customers/{theirs['id']}/orders",
        f"/orders?customerId={theirs['id']}",
    ):
        wait_for(http, f"/customers/{theirs['id']}", 1)
        assert http.get(path, headers=mine).status_code == 404, path
    # ... and the other way round: the shopper's order is invisible to them.
    assert http.get(f"/orders/{shopper['order']}", headers=other).status_code == 404
    assert (
        http.post(
            f"/orders/{shopper['order']}/cancel",
            json={"reason": "not mine"},
            headers=other,
        ).status_code
        == 404
    )
    assert (
        http.patch(
            f"/customers/{shopper['customer']}", json={"name": "X"}, headers=other
        ).status_code
        == 404
    )
    # Acting for another customer id: 403, documented.
    refused = http.post(
        "/orders",
        json={
            "customerId": shopper["customer"],
            "items": [{"productId": shopper["product"], "quantity": 1}],
            "shippingAddress": ADDRESS,
        },
        headers=other,
    )
    assert refused.status_code == 403
    # Searching across customers is not self-service.
    assert http.get("/orders", headers=mine).status_code == 403
    # Their own still works.
    assert http.get(f"/orders/{shopper['order']}", headers=mine).status_code == 200
    assert (
        http.get(f"/customers/{shopper['customer']}", headers=mine).status_code == 200
    )


def test_one_customer_record_per_subject(http, shopper):
    again = http.post(
        "/customers",
        json={
            "name": "Twice",
            "email": f"twice-{uuid.uuid4().hex[:6]}@example.com",
            "creditLimit": 1,
        },
        headers=shopper["headers"],
    )
    assert again.status_code == 409


def _forge(local_stack, **changes) -> str:
    return (
        local_stack.token()
        if not changes
        else dev_issuer.mint(local_stack.state_dir, [ADMIN], "attacker", **changes)
    )


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _attacks(local_stack) -> dict[str, str]:
    good = local_stack.token()
    header, payload, signature = good.split(".")
    claims = jwt.decode(good, options={"verify_signature": False})
    jwks = json.loads(
        (dev_issuer.folder(local_stack.state_dir) / "jwks.json").read_text()
    )
    public_pem = jwt.algorithms.RSAAlgorithm.from_jwk(
        json.dumps(jwks["keys"][0])
    ).public_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PublicFormat.SubjectPublicKeyInfo,
    )
    kid = jwks["keys"][0]["kid"]
    now = int(time.time())
    hmac_header = {"alg": "HS256", "typ": "JWT", "kid": kid}
    hmac_body = f"{_b64(hmac_header)}.{_b64(claims)}"
    hmac_signature = (
        base64.urlsafe_b64encode(
            hmac.new(public_pem, hmac_body.encode(), hashlib.sha256).digest()
        )
        .rstrip(b"=")
        .decode()
    )
    return {
        "none algorithm": f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': kid})}.{_b64(claims)}.",
        "HMAC with the public key": f"{hmac_body}.{hmac_signature}",
        "expired": _forge(local_stack, exp=now - 3600, iat=now - 7200, nbf=now - 7200),
        "not yet valid": _forge(local_stack, nbf=now + 3600),
        "wrong audience": _forge(local_stack, aud="api://someone-else"),
        "wrong issuer": _forge(
            local_stack, iss="https://login.microsoftonline.com/evil/v2.0"
        ),
        "unknown key id": f"{_b64({'alg': 'RS256', 'typ': 'JWT', 'kid': 'no-such-key'})}.{payload}.{signature}",
        "no key id": f"{_b64({'alg': 'RS256', 'typ': 'JWT'})}.{payload}.{signature}",
        "a key id that is not a string": f"{_b64({'alg': 'RS256', 'typ': 'JWT', 'kid': [kid]})}.{payload}.{signature}",
        "tampered payload": f"{header}.{_b64({**claims, 'roles': [ADMIN, SUPPORT], 'sub': 'x'})}.{signature}",
        "garbage": "not-a-token",
    }


@pytest.mark.parametrize(
    "attack",
    [
        "none algorithm",
        "HMAC with the public key",
        "expired",
        "not yet valid",
        "wrong audience",
        "wrong issuer",
        "unknown key id",
        "no key id",
        "a key id that is not a string",
        "tampered payload",
        "garbage",
    ],
)
def test_token_attacks_are_refused(http, local_stack, attack):
    token = _attacks(local_stack)[attack]
    response = http.get("/projections", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401, response.text
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer") and 'error="invalid_token"' in challenge
    assert response.headers["content-type"].startswith("application/problem+json")


def test_no_token_is_a_plain_challenge(http, devhost):
    with httpx.Client(base_url=devhost.base_url + "/api") as anonymous:
        response = anonymous.get("/projections")
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="orders"'
        assert anonymous.get("/health").status_code == 200
        assert anonymous.get("/openapi.json").status_code == 200
        assert anonymous.get("/health?deep=true").status_code == 401


def test_a_refused_command_leaves_no_row_event_or_idempotency_record(http, local_stack):
    db = sqlite3.connect(local_stack.settings["SQLITE_PATH"])

    def counts() -> tuple[int, ...]:
        return tuple(
            db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in ("customers", "products", "outbox", "idempotency_keys")
        )

    before = counts()
    key = uuid.uuid4().hex
    support = bearer(local_stack, [SUPPORT], "support-1")
    refused = http.post(
        "/products",
        json={"sku": f"R-{key[:8]}", "name": "Refused", "price": 1, "stock": 1},
        headers={**support, "Idempotency-Key": key},
    )
    assert refused.status_code == 403
    assert counts() == before
    # The same key, now by an allowed caller: a first run, not a replay of the refusal.
    allowed = http.post(
        "/products",
        json={"sku": f"R-{key[:8]}", "name": "Refused", "price": 1, "stock": 1},
        headers={"Idempotency-Key": key},
    )
    assert allowed.status_code == 202
    db.close()


def test_events_and_the_order_document_say_who_did_it(http, local_stack, shopper):
    fulfillment = bearer(local_stack, [FULFILLMENT], "packer-7")
    placed = accepted(
        http.post(
            "/orders",
            json={
                "customerId": shopper["customer"],
                "items": [{"productId": shopper["product"], "quantity": 1}],
                "shippingAddress": ADDRESS,
            },
            headers=shopper["headers"],
        )
    )
    shipped = accepted(
        http.post(
            f"/orders/{placed['id']}/ship",
            json={"trackingNumber": "WHO-1"},
            headers=fulfillment,
        )
    )
    document = wait_for(http, f"/orders/{placed['id']}", shipped["version"])
    by = [
        (c["version"], c["change"], c["by"]["subject"], c["by"]["roles"])
        for c in document["changes"]
    ]
    assert by[0] == (1, "OrderPlaced", shopper["subject"], [CUSTOMER])
    assert by[-1] == (shipped["version"], "OrderShipped", "packer-7", [FULFILLMENT])
    log = LocalEventLog(local_stack.settings["LOCAL_EVENT_LOG_PATH"])
    envelopes = [
        json.loads(e.body)
        for p in log.partition_ids
        for e in log.read(p, None, 100_000)
        if placed["id"].encode() in e.body and b"OrderShipped" in e.body
    ]
    assert envelopes and envelopes[-1]["actor"] == {
        "subject": "packer-7",
        "roles": [FULFILLMENT],
    }


def test_a_staff_customer_order_flow_still_works(http):
    c = customer(http)
    p = product(http)
    o = order(http, c["id"], [(p["id"], 1)])
    assert wait_for(http, f"/orders/{o['id']}", o["version"])["changes"][0]["by"][
        "roles"
    ] == [ADMIN]


def test_idempotency_keys_are_each_callers_own(http, local_stack):
    key = "first-order"  # the README's literal key: every reader will try it
    made = []
    for subject in (f"k-{uuid.uuid4().hex[:6]}", f"k-{uuid.uuid4().hex[:6]}"):
        headers = bearer(local_stack, [CUSTOMER], subject)
        response = http.post(
            "/customers",
            json={"name": "Keyed", "email": f"{subject}@example.com", "creditLimit": 1},
            headers={**headers, "Idempotency-Key": key},
        )
        assert response.status_code == 202, response.text
        made.append(response.json()["id"])
        again = http.post(
            "/customers",
            json={"name": "Keyed", "email": f"{subject}@example.com", "creditLimit": 1},
            headers={**headers, "Idempotency-Key": key},
        )
        assert again.status_code == 202 and again.json()["id"] == made[-1]  # a replay
    assert made[0] != made[1]


def test_a_self_service_customer_cannot_raise_their_own_credit_limit(http, shopper):
    refused = http.patch(
        f"/customers/{shopper['customer']}",
        json={"creditLimit": 9_999_999_999_999.99},
        headers=shopper["headers"],
    )
    assert refused.status_code == 403
    renamed = http.patch(
        f"/customers/{shopper['customer']}",
        json={"name": "Shopper Renamed"},
        headers=shopper["headers"],
    )
    assert renamed.status_code == 202
