"""The HTTP adapter shared by every route: one declaration per route, thin entry points.

`http_route` registers an Azure Function on a blueprint AND records the route's
contract (method, path, body and response schemas, errors) in `ROUTES`, from
which `shared.openapi` generates the OpenAPI document, so the two can never
drift. The entry point parses and validates the request into a plain `Request`,
calls the handler (testable without Azure) and turns its `Response` or
`ProblemError` into a `func.HttpResponse` carrying `X-Correlation-Id`.
"""

import asyncio
import inspect
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import azure.functions as func
from pydantic import BaseModel, ValidationError

from shared import formats, telemetry
from shared.auth import Principal, authenticate, authorize
from shared.availability import as_unavailable
from shared.encoding import dumps
from shared.errors import (
    FieldError,
    PayloadTooLarge,
    ProblemError,
    UnsupportedMediaType,
    ValidationFailed,
    hide_unless_owned,
)

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
PROBLEM_JSON = "application/problem+json"


@dataclass(frozen=True)
class RouteSpec:
    """What the contract says about one route; the OpenAPI document is built from these."""

    name: str
    method: str
    path: str
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    errors: tuple[int, ...] = ()
    anonymous: bool = False
    # App roles allowed on the route (shared.auth); empty only for anonymous routes.
    roles: tuple[str, ...] = ()
    idempotent: bool = False
    conditional: bool = False
    content_type: str = "application/json"


ROUTES: list[RouteSpec] = []


@dataclass
class Request:
    """A parsed request: what handlers see. Plain data, no Azure types."""

    method: str
    route_params: dict[str, str]
    query: dict[str, str]
    headers: dict[str, str]
    correlation_id: str
    body: BaseModel | None = None
    params: BaseModel | None = None
    raw_body: bytes = b""
    principal: Principal | None = None  # None only on anonymous routes
    # The subject whose records alone this request may touch (a caller reaching the
    # route only as Orders.Customer), or None for any record.
    owner: str | None = None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def check_owner(self, owner_subject: str | None, what: str) -> None:
        hide_unless_owned(self.owner, owner_subject, what)


@dataclass
class Response:
    body: Any = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


def problem(error: ProblemError) -> Response:
    return Response(error.as_json(), error.status, dict(error.headers), PROBLEM_JSON)


def _field_path(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        path += (
            f"[{part}]"
            if isinstance(part, int)
            else (f".{part}" if path else str(part))
        )
    return path


_MESSAGES = {
    "extra_forbidden": "unknown field",
    "missing": "field required",
}


def validation_errors(exc: ValidationError) -> list[FieldError]:
    errors = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        message = (
            str(err["ctx"]["error"]) if err["type"] == "value_error" else err["msg"]
        )
        errors.append(
            FieldError(_field_path(loc) or "body", _MESSAGES.get(err["type"], message))
        )
    return errors


def parse_body(
    model: type[BaseModel], body: bytes, content_type: str | None
) -> BaseModel:
    """Validate a JSON body against a model; problem errors for size, media type and content."""
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(
            f"The body is {len(body)} bytes; the limit is {MAX_BODY_BYTES}."
        )
    if not body.strip():
        if model.model_fields and any(
            f.is_required() for f in model.model_fields.values()
        ):
            raise ValidationFailed(
                "A JSON body is required.", [FieldError("body", "required")]
            )
        return model()
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise UnsupportedMediaType(
            f"Send the body as application/json, not {media_type or 'no content type'}."
        )
    try:
        # Numbers with a fraction become Decimal straight from the JSON text: money is never a float.
        document = json.loads(body, parse_float=Decimal)
    except (
        ValueError,
        UnicodeDecodeError,
        RecursionError,
    ) as exc:  # nesting too deep: bad input too
        raise ValidationFailed(f"The body is not valid JSON: {exc}.") from None
    if not isinstance(document, dict):
        raise ValidationFailed("The body must be a JSON object.")
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise ValidationFailed(
            "The body has invalid fields.", validation_errors(exc)
        ) from None


def parse_query(model: type[BaseModel], query: Mapping[str, str]) -> BaseModel:
    try:
        return model.model_validate(dict(query))
    except ValidationError as exc:
        raise ValidationFailed(
            "The query string has invalid parameters.", validation_errors(exc)
        ) from None


_CORRELATION_ID = re.compile(formats.CORRELATION_ID)


def correlation_id_of(headers: Mapping[str, str]) -> str:
    given = (headers.get("x-correlation-id") or "").strip()
    # Echo a sane client id (it goes back in a header and into logs); replace anything else.
    return given if _CORRELATION_ID.match(given) else str(uuid.uuid4())


# A route's handler: plain, or `async def` when it waits (it then runs on the event loop).
Handler = Callable[[Request], Response] | Callable[[Request], Awaitable[Response]]


def handle(
    spec: RouteSpec, handler: Callable[[Request], Response], req: func.HttpRequest
) -> func.HttpResponse:
    """Run one request through parsing, the handler and error mapping."""
    headers, correlation_id = _correlated(req)
    try:
        response = handler(_request(spec, req, headers, correlation_id))
    except Exception as exc:  # noqa: BLE001 - every failure becomes a problem response
        response = problem(_problem_of(spec, exc))
    return _render(response, correlation_id)


async def handle_async(
    spec: RouteSpec,
    handler: Callable[[Request], Awaitable[Response]],
    req: func.HttpRequest,
) -> func.HttpResponse:
    """`handle` for an `async def` handler, on the worker's event loop. Checking the
    caller may fetch signing keys, so parsing runs in a thread, as the handler's own
    blocking calls must."""
    headers, correlation_id = _correlated(req)
    try:
        request = await asyncio.to_thread(_request, spec, req, headers, correlation_id)
        response = await handler(request)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a problem response
        response = problem(_problem_of(spec, exc))
    return _render(response, correlation_id)


def _correlated(req: func.HttpRequest) -> tuple[dict[str, str], str]:
    """The request's headers (lower-case names) and its correlation id, now current."""
    headers = {k.lower(): v for k, v in req.headers.items()}
    correlation_id = correlation_id_of(headers)
    telemetry.correlate(correlation_id)
    return headers, correlation_id


def _request(
    spec: RouteSpec, req: func.HttpRequest, headers: dict[str, str], correlation_id: str
) -> Request:
    """The request as the handler sees it: caller checked, body and query parsed."""
    body = req.get_body() or b""
    request = Request(
        method=req.method.upper(),
        route_params=dict(req.route_params),
        query=dict(req.params),
        headers=headers,
        correlation_id=correlation_id,
        raw_body=body,
    )
    if not spec.anonymous:
        # Who, then whether: before the body is even read, so a refused caller
        # learns nothing about the request's shape and nothing is written.
        request.principal = authenticate(headers)
        authorize(request.principal, spec.roles)
        request.owner = request.principal.owner_scope(spec.roles)
    if spec.body is not None:
        request.body = parse_body(spec.body, body, headers.get("content-type"))
    elif len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(
            f"The body is {len(body)} bytes; the limit is {MAX_BODY_BYTES}."
        )
    if spec.query is not None:
        request.params = parse_query(spec.query, request.query)
    return request


def _problem_of(spec: RouteSpec, exc: Exception) -> ProblemError:
    """The problem a failure answers: its own, a 503 for an unavailable dependency, else
    a logged 500 that tells the client nothing more."""
    if isinstance(exc, ProblemError):
        if exc.status >= 500:
            log.exception("%s failed", spec.name)
        return exc
    if unavailable := as_unavailable(exc):
        log.warning("%s: dependency unavailable: %s", spec.name, exc)
        return unavailable
    log.exception("%s failed with an unexpected error", spec.name)
    return ProblemError("An unexpected error occurred; it has been logged.")


def _render(response: Response, correlation_id: str) -> func.HttpResponse:
    out_headers = {**response.headers, "X-Correlation-Id": correlation_id}
    if response.body is None:
        return func.HttpResponse(status_code=response.status, headers=out_headers)
    payload = (
        response.body
        if isinstance(response.body, str | bytes)
        else dumps(response.body)
    )
    return func.HttpResponse(
        payload,
        status_code=response.status,
        headers=out_headers,
        mimetype=response.content_type,
        charset="utf-8",
    )


def http_route(
    bp: func.Blueprint,
    method: str,
    path: str,
    *,
    name: str,
    summary: str,
    tag: str,
    **contract: Any,
) -> Callable[[Handler], Handler]:
    """Register `handler` (plain or `async def`) as an HTTP function on `bp` and record
    its contract."""
    spec = RouteSpec(
        name=name,
        method=method.upper(),
        path=path,
        summary=summary,
        tag=tag,
        **contract,
    )
    if not spec.anonymous and not spec.roles:
        raise ValueError(f"route {name!r} names no role: say who may call it")
    ROUTES.append(spec)
    # The app checks the caller's Entra ID token itself (shared.auth): no host key.
    auth = func.AuthLevel.ANONYMOUS

    def register(handler: Handler) -> Handler:
        entry: Callable[[func.HttpRequest], Any]
        if inspect.iscoroutinefunction(handler):
            # The worker runs an `async def` function on its event loop, holding no
            # thread while the handler awaits (a read-your-writes wait).
            async def entry(req: func.HttpRequest) -> func.HttpResponse:
                return await telemetry.serve_http_async(
                    handle_async, spec, handler, req
                )
        else:

            def entry(req: func.HttpRequest) -> func.HttpResponse:
                return telemetry.serve_http(handle, spec, handler, req)

        entry.__name__ = entry.__qualname__ = name
        methods = None if spec.method == "ANY" else [spec.method]  # None: every method
        bp.function_name(name)(
            bp.route(route=path, methods=methods, auth_level=auth)(entry)
        )
        return handler

    return register
