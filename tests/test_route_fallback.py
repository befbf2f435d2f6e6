"""The 405 of the routing fallback: which methods the declared routes have for a path."""

from __future__ import annotations

from shared.http import RouteSpec
from shared.operations import allowed_methods


def spec(method: str, path: str) -> RouteSpec:
    return RouteSpec(
        name=f"{method} {path}", method=method, path=path, summary="", tag=""
    )


ROUTES = [
    spec("POST", "customers"),
    spec("GET", "orders/{orderId}"),
    spec("DELETE", "orders/{orderId}/items/{productId}"),
    spec("PATCH", "orders/{orderId:guid}"),
    spec("GET", "openapi.json"),
    spec("ANY", "{*path}"),
]


def test_methods_of_a_path() -> None:
    assert allowed_methods("customers", ROUTES) == ["POST"]
    assert allowed_methods("Customers", ROUTES) == ["POST"]  # literals ignore case
    assert allowed_methods("orders/abc", ROUTES) == [
        "GET",
        "PATCH",
    ]  # constraints ignored
    assert allowed_methods("orders/abc/items/x", ROUTES) == ["DELETE"]


def test_no_methods_where_no_route_has_the_path() -> None:
    assert allowed_methods("nothing", ROUTES) == []
    assert allowed_methods("customers/", ROUTES) == []
    assert allowed_methods("orders//", ROUTES) == []
    assert allowed_methods("openapiXjson", ROUTES) == []  # a literal dot is a dot
