"""Operational routes: health, the OpenAPI document, and the routing fallback (404/405 as problem+json).

The projections' routes (status, redrive) live with the projections, in sync/routes.py.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated, Any

import azure.functions as func
from pydantic import BaseModel, ConfigDict, Field

from shared import openapi
from shared.auth import ADMIN, authenticate, authorize
from shared.availability import RETRY_AFTER_SECONDS
from shared.errors import MethodNotAllowed, NotFound, ServiceUnavailable
from shared.http import ROUTES, Request, Response, RouteSpec, http_route

if TYPE_CHECKING:
    from werkzeug.routing import MapAdapter

bp = func.Blueprint()


class HealthParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    deep: Annotated[
        bool, Field(description="Also check SQL, Cosmos DB and the event transport")
    ] = False


class Health(BaseModel):
    status: str
    checks: dict[str, Any] = {}


def _check_sql() -> None:
    from shared.sql.db import database

    database().run(lambda tx: tx.one("SELECT 1"), read_only=True)


def _check_cosmos() -> None:
    from shared.cosmos import database

    database().read()


def _check_events() -> None:
    from shared.publisher import publisher

    publisher().check()


CHECKS = {"sql": _check_sql, "cosmos": _check_cosmos, "events": _check_events}


@http_route(
    bp,
    "GET",
    "health",
    name="health",
    summary="Liveness; ?deep=true checks dependencies",
    tag="operations",
    query=HealthParams,
    response=Health,
    errors=(400, 503),
    anonymous=True,
)
def health(request: Request) -> Response:
    if not (isinstance(request.params, HealthParams) and request.params.deep):
        return Response({"status": "healthy"})
    # The deep check reveals the dependencies' state: operators only.
    authorize(authenticate(request.headers), (ADMIN,))
    checks, healthy = {}, True
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            check()
            checks[name] = {
                "status": "healthy",
                "ms": round((time.perf_counter() - started) * 1000, 1),
            }
        except Exception as exc:  # noqa: BLE001 - any failure of a dependency is "unhealthy", reported
            healthy = False
            checks[name] = {
                "status": "unhealthy",
                "error": f"{type(exc).__name__}: {exc}"[:300],
            }
    if not healthy:
        error = ServiceUnavailable("A dependency is unhealthy.")
        # A problem document whose `checks` member says which dependency failed.
        return Response(
            {**error.as_json(), "checks": checks},
            503,
            {"Retry-After": str(RETRY_AFTER_SECONDS)},
            content_type="application/problem+json",
        )
    return Response({"status": "healthy", "checks": checks})


@http_route(
    bp,
    "GET",
    "openapi.json",
    name="openapi",
    summary="This API's OpenAPI 3.1 document",
    tag="operations",
    anonymous=True,
)
def openapi_document(request: Request) -> Response:
    return Response(openapi.build_document(ROUTES))


def _rule(template: str) -> str:
    """A route template as a werkzeug rule, lower-cased (the host matches literals
    case-insensitively); constraints do not matter to which methods a path has."""
    return "/" + re.sub(r"{\*?(\w+)(:[^}]*)?\??}", r"<\1>", template).lower()


@functools.lru_cache(maxsize=1)
def _method_map(routes: tuple[RouteSpec, ...]) -> MapAdapter:
    # Loaded on the first request that misses every route, not at the app's cold start.
    from werkzeug.routing import Map, Rule

    rules = [
        Rule(_rule(s.path), methods=[s.method], endpoint=s.name)
        for s in routes
        if s.method != "ANY"
    ]
    return Map(rules, merge_slashes=False, redirect_defaults=False).bind("")


def allowed_methods(path: str, routes: Iterable[RouteSpec]) -> list[str]:
    """The methods the routes declare for `path` (without the catch-all's), sorted."""
    routes = tuple(routes)
    declared = {s.method for s in routes}
    # werkzeug allows HEAD wherever GET is; the Functions host does not.
    found = _method_map(routes).allowed_methods("/" + path.lower())
    return sorted(m for m in found if m in declared)


@http_route(
    bp,
    "ANY",
    "{*path}",
    name="route_fallback",
    summary="Unknown route",
    tag="operations",
    anonymous=True,
)
def route_fallback(request: Request) -> Response:
    """Reached only when no route matched: 405 if the path exists with other methods, else 404."""
    path = request.route_params.get("path", "")
    allowed = allowed_methods(path, ROUTES)
    if allowed:
        raise MethodNotAllowed(
            f"{request.method} is not allowed here; use {', '.join(allowed)}.",
            headers={"Allow": ", ".join(allowed)},
        )
    raise NotFound(f"No route /api/{path}.")
