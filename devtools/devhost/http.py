"""The ASGI app (Starlette) that serves the HTTP-triggered functions.

Requests are turned into `func.HttpRequest` as the host + Python worker do (lower-case
header names, repeated headers and query values joined with ',', empty query values
dropped, raw body bytes), and `func.HttpResponse` is translated back through the
library's own `HttpResponseConverter`, so headers, mimetype/charset and cookies come
out as they would in Azure.
"""

from __future__ import annotations

import logging
import os
import time
import urllib.parse
from collections.abc import Iterable
from typing import Any

from azure.functions import _abc as functions_abc
from azure.functions.http import HttpRequest as WorkerHttpRequest
from azure.functions.http import HttpResponseConverter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from devtools.dev_issuer import JWKS_ROUTE
from devtools.devhost import STATUS_PATH
from devtools.devhost.indexing import HTTP_TRIGGER, IndexedFunction
from devtools.devhost.invocation import Invoker, build_kwargs
from devtools.devhost.routing import RouteTable
from shared.errors import MethodNotAllowed, NotFound, ProblemError
from shared.http import PROBLEM_JSON

log = logging.getLogger("host")

DEV_ISSUER_JWKS = "DEV_ISSUER_JWKS"  # path of the JWKS document to serve, if any
_HOP_HEADERS = {"content-length", "transfer-encoding", "connection"}


def full_template(function: IndexedFunction, route_prefix: str) -> str:
    route = function.trigger.get("route")
    route = function.name if route is None else str(route).strip("/")
    return "/".join(p for p in (route_prefix.strip("/"), route) if p)


def build_route_table(
    functions: Iterable[IndexedFunction], route_prefix: str
) -> RouteTable:
    table = RouteTable()
    for function in functions:
        if function.trigger_type == HTTP_TRIGGER:
            table.add(
                full_template(function, route_prefix),
                function.trigger.get("methods"),
                function,
            )
    return table


def _joined(
    pairs: Iterable[tuple[str, str]], *, lower: bool, drop_empty: bool
) -> dict[str, str]:
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name.lower() if lower else name, []).append(value)
    return {
        k: ",".join(v)
        for k, v in grouped.items()
        if not (drop_empty and not ",".join(v))
    }


async def to_function_request(
    request: Request, route_params: dict[str, str]
) -> WorkerHttpRequest:
    headers = _joined(
        ((k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw),
        lower=True,
        drop_empty=False,
    )
    query = urllib.parse.parse_qsl(
        request.scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True
    )
    return WorkerHttpRequest(
        method=request.method,
        url=str(request.url),
        headers=headers,
        params=_joined(query, lower=False, drop_empty=True),
        route_params=dict(route_params),
        body_type="bytes",
        body=await request.body(),
    )


def to_asgi_response(result: Any) -> Response:
    """Translate what the function returned, as the worker's HTTP output converter does.

    Anything but an HttpResponse or a str (None included) cannot be encoded for the `$return`
    binding the v2 model always declares; the worker fails the invocation, the host answers 500.
    """
    if isinstance(result, str):
        return Response(
            result.encode("utf-8"),
            headers={"content-type": "text/plain; charset=utf-8"},
        )
    if not isinstance(result, functions_abc.HttpResponse):
        raise TypeError(
            f"unable to encode outgoing TypedData: an HTTP function must return "
            f"func.HttpResponse or str, not {type(result).__name__}"
        )
    datum = HttpResponseConverter.encode(result, expected_type=None).value
    response = Response(
        datum["body"].value or b"", status_code=int(datum["status_code"].value)
    )
    for name, value in datum["headers"].items():
        if name.lower() not in _HOP_HEADERS:
            response.raw_headers.append(
                (name.lower().encode("latin-1"), str(value.value).encode("latin-1"))
            )
    for cookie in datum.get("cookies") or []:
        for morsel in cookie.values():
            response.raw_headers.append(
                (b"set-cookie", morsel.OutputString().encode("latin-1"))
            )
    return response


def problem(error: ProblemError) -> JSONResponse:
    """The host's own 404 and 405, as the app's problem documents (shared.errors)."""
    return JSONResponse(
        error.as_json(),
        status_code=error.status,
        headers=error.headers or None,
        media_type=PROBLEM_JSON,
    )


class FunctionDispatcher:
    """ASGI app behind every path that is not the host's own: route, invoke, translate."""

    def __init__(self, table: RouteTable, invoker: Invoker) -> None:
        self.table = table
        self.invoker = invoker

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request = Request(scope, receive)
        raw_path = scope.get("raw_path") or scope["path"].encode("utf-8")
        resolution = self.table.resolve(request.method, raw_path.decode("latin-1"))
        name = "-"
        if resolution.found:
            function: IndexedFunction = resolution.target
            name = function.name
            response = await self._invoke(function, request, resolution.route_params)
        elif resolution.method_not_allowed:
            allow = ", ".join(resolution.allowed)
            detail = (
                f"{request.method} is not allowed on {scope['path']}; allowed: {allow}."
            )
            response = problem(MethodNotAllowed(detail, headers={"Allow": allow}))
        else:
            response = problem(NotFound(f"No function serves {scope['path']}."))
        await response(scope, receive, send)
        elapsed = (time.perf_counter() - started) * 1000
        log.info(
            "%s %s -> %d in %.1f ms (%s)",
            request.method,
            scope["path"],
            response.status_code,
            elapsed,
            name,
        )

    async def _invoke(
        self, function: IndexedFunction, request: Request, route_params: dict[str, str]
    ) -> Response:
        try:
            function_request = await to_function_request(request, route_params)
            result = await self.invoker.call_async(
                function, build_kwargs(function, function_request)
            )
            return to_asgi_response(result)
        except Exception:
            log.exception("Executed 'Functions.%s' (Failed)", function.name)
            return Response(status_code=500)


def create_app(
    functions: Iterable[IndexedFunction],
    route_prefix: str,
    invoker: Invoker,
    function_set: str = "all",
) -> Starlette:
    """`function_set` (all, http or triggers) is reported by the status endpoint, so a
    supervisor running the two sets in separate processes can tell which one answered."""
    table = build_route_table(functions, route_prefix)

    async def host_status(_: Request) -> JSONResponse:
        return JSONResponse({"state": "Running", "functions": function_set})

    routes = [Route(STATUS_PATH, host_status, methods=["GET"])]
    # The development token issuer's public keys (devtools/dev_issuer.py), published as
    # an identity provider publishes its JWKS; the app fetches them via AUTH_JWKS_URI.
    if jwks := os.environ.get(DEV_ISSUER_JWKS):
        routes.append(Route(JWKS_ROUTE, lambda _: FileResponse(jwks), methods=["GET"]))
    routes.append(Route("/{path:path}", FunctionDispatcher(table, invoker)))
    return Starlette(routes=routes)


def describe_routes(
    functions: Iterable[IndexedFunction], route_prefix: str, base_url: str
) -> list[str]:
    """One line per HTTP function, like the list `func start` prints."""
    lines = []
    for function in functions:
        if function.trigger_type == HTTP_TRIGGER:
            methods = (
                ",".join(m.upper() for m in function.trigger.get("methods") or [])
                or "ALL"
            )
            lines.append(
                f"{function.name}: [{methods}] {base_url}/{full_template(function, route_prefix)}"
            )
    return lines
