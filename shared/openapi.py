"""The OpenAPI documents, generated from a route table (the route declarations,
shared.http.ROUTES, once the app has registered them).

The app serves OpenAPI 3.1 (`GET /api/openapi.json`, `build_document`). API Management
imports 3.1 only with gaps (numeric exclusive bounds, `anyOf` with `null`, security
definitions), so it gets an OpenAPI 3.0.3 rendering of the same document
(`build_document_30`): `make openapi` writes it to infra/openapi.json (through
devtools/openapi.py, which loads the app), and a test keeps that copy equal to what the
code generates and in agreement with the 3.1 document on every operation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from pydantic import BaseModel

from shared import formats
from shared.auth import CUSTOMER, ROLES
from shared.http import ROUTES, RouteSpec

TITLE = "Orders API"
VERSION = "1.0.0"
OPENAPI_31 = "3.1.0"
OPENAPI_30 = "3.0.3"

_STATUS_TEXT = {
    400: "Bad request",
    404: "Not found",
    405: "Method not allowed",
    409: "Business rule refused",
    412: "Version mismatch (If-Match)",
    413: "Body too large",
    415: "Body is not application/json",
    401: "No valid bearer token",
    403: "The token's roles do not allow this operation",
    422: "Idempotency-Key reused with another request",
    503: "A dependency is unavailable",
}

PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {
                    "field": {"type": "string"},
                    "message": {"type": "string"},
                },
            },
        },
    },
}

# Request headers, declared once and referenced by the operations that read them.
HEADER_PARAMETERS: dict[str, dict[str, Any]] = {
    "IdempotencyKey": {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": "Repeating a command with the same key and body answers as the "
        "first time and changes nothing; the same key with another body is 422.",
        "schema": {
            "type": "string",
            "minLength": 1,
            "maxLength": 200,
            "pattern": formats.IDEMPOTENCY_KEY,
        },
    },
    "IfMatch": {
        "name": "If-Match",
        "in": "header",
        "required": False,
        "description": 'The version the change is based on, as the ETag carries it ("3"); '
        "another current version is 412.",
        "schema": {"type": "string", "pattern": formats.IF_MATCH},
    },
    "CorrelationId": {
        "name": "X-Correlation-Id",
        "in": "header",
        "required": False,
        "description": "Echoed in the response and carried into events; a value outside "
        "this pattern is replaced by a new id.",
        "schema": {
            "type": "string",
            "maxLength": 128,
            "pattern": formats.CORRELATION_ID,
        },
    },
}

# --- schema walking ----------------------------------------------------------------------

_ONE = (
    "items",
    "not",
    "additionalProperties",
    "contains",
    "if",
    "then",
    "else",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
    "contentSchema",
)
_LIST = ("anyOf", "oneOf", "allOf", "prefixItems")
_MAP = ("properties", "patternProperties", "$defs", "dependentSchemas")


def map_schema(
    schema: Any, fn: Callable[[dict[str, Any]], dict[str, Any]]
) -> dict[str, Any]:
    """`fn` applied to every subschema of `schema`, innermost first (a new object)."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    for key in _ONE:
        if isinstance(out.get(key), dict):
            out[key] = map_schema(out[key], fn)
    for key in _LIST:
        if key in out:
            out[key] = [map_schema(item, fn) for item in out[key]]
    for key in _MAP:
        if key in out:
            out[key] = {name: map_schema(s, fn) for name, s in out[key].items()}
    return fn(out)


def _untitled(schema: dict[str, Any]) -> dict[str, Any]:
    # pydantic's titles ("Productid") repeat the property names and only add bytes.
    return {k: v for k, v in schema.items() if k != "title"}


_NULL = {"type": "null"}


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema minus its `null` alternative (a query string cannot carry null)."""
    branches = schema.get("anyOf", [])
    if _NULL not in branches:
        return schema
    rest = [b for b in branches if b != _NULL]
    outer = {k: v for k, v in schema.items() if k != "anyOf" and k != "default"}
    if schema.get("default") is not None:
        outer["default"] = schema["default"]
    if len(rest) == 1:
        return {**rest[0], **outer}
    return {**outer, "anyOf": rest}


# --- the 3.1 document ----------------------------------------------------------------------


def _schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, str]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    found = {
        **schema.pop("$defs", {}),
        model.__name__: schema,
    }
    for name, definition in found.items():
        definition = map_schema(definition, _untitled)
        if components.get(name, definition) != definition:
            # Two models with one name would silently share whichever came last.
            raise ValueError(f"two different schemas are both named {name!r}")
        components[name] = definition
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _path_parameter(name: str) -> dict[str, Any]:
    if name.endswith("Id"):
        schema = {
            **formats.UUID_SCHEMA,
            "description": "A server-generated UUID; any other value names nothing (404).",
        }
    else:
        schema = {"type": "string"}
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _parameters(spec: RouteSpec) -> list[dict[str, Any]]:
    params = [_path_parameter(name) for name in re.findall(r"{(\w+)", spec.path)]
    if spec.query is not None:
        properties = spec.query.model_json_schema()["properties"]
        for name, field in spec.query.model_fields.items():
            schema = map_schema(_without_null(properties[name]), _untitled)
            if field.description:
                schema.pop("description", None)  # said once, on the parameter
            param: dict[str, Any] = {
                "name": name,
                "in": "query",
                "required": field.is_required(),
            }
            if field.description:
                param["description"] = field.description
            param["schema"] = schema
            params.append(param)
    refs = [
        *(["IdempotencyKey"] if spec.idempotent else []),
        *(["IfMatch"] if spec.conditional else []),
        "CorrelationId",
    ]
    params += [{"$ref": f"#/components/parameters/{ref}"} for ref in refs]
    return params


ENTRA_ID_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "JWT",
    "description": "A Microsoft Entra ID access token for the API's app "
    "registration; its `roles` claim holds the app roles "
    + ", ".join(ROLES)
    + ". Locally: `make -s token ROLES=...`.",
}


def _problem_response(status: int) -> dict[str, Any]:
    return {
        "description": _STATUS_TEXT.get(status, "Error"),
        "content": {
            "application/problem+json": {
                "schema": {"$ref": "#/components/schemas/Problem"}
            }
        },
    }


def _responses(spec: RouteSpec, components: dict[str, Any]) -> dict[str, Any]:
    success: dict[str, Any] = {
        "description": "Accepted" if spec.status == 202 else "OK"
    }
    if spec.response is not None:
        success["content"] = {
            spec.content_type: {"schema": _schema(spec.response, components)}
        }
    elif spec.content_type != "application/json":
        success["content"] = {spec.content_type: {"schema": {"type": "object"}}}
    responses = {str(spec.status): success}
    # Any route meets an unavailable dependency the same way (shared.http.handle):
    # 503 with Retry-After, so every operation declares it; and every route that
    # needs a token answers 401 without one and 403 to a role it does not allow.
    auth_errors = set() if spec.anonymous else {401, 403}
    for status in sorted({*spec.errors, *auth_errors, 503}):
        responses[str(status)] = _problem_response(status)
    responses["503"]["headers"] = {
        "Retry-After": {
            "description": "Seconds to wait before trying again.",
            "schema": {"type": "integer", "minimum": 1},
        }
    }
    if not spec.anonymous:
        responses["401"]["headers"] = {
            "WWW-Authenticate": {
                "description": 'The Bearer challenge (error="invalid_token" when a token was sent).',
                "schema": {"type": "string"},
            }
        }
    return responses


def _security(spec: RouteSpec) -> dict[str, Any]:
    """The operation's security requirement and, on protected routes, the roles it allows."""
    if spec.anonymous:
        return {"security": []}
    own_records = (
        " (`Orders.Customer`: own records only)." if CUSTOMER in spec.roles else "."
    )
    return {
        "security": [{"entraId": []}],
        # The app roles (the token's `roles` claim) allowed on this operation.
        "x-roles": list(spec.roles),
        "description": "Roles: "
        + ", ".join(f"`{r}`" for r in spec.roles)
        + own_records,
    }


def _operation(spec: RouteSpec, components: dict[str, Any]) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": spec.name,
        "summary": spec.summary,
        "tags": [spec.tag],
        "parameters": _parameters(spec),
        "responses": _responses(spec, components),
    }
    if spec.body is not None and spec.body.model_fields:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _schema(spec.body, components)}},
        }
    return {**operation, **_security(spec)}


def build_document(routes: Iterable[RouteSpec] | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document the app serves, from its route table (default: every
    route declared so far, shared.http.ROUTES)."""
    components: dict[str, Any] = {"Problem": PROBLEM_SCHEMA}
    paths: dict[str, Any] = {}
    for spec in sorted(
        ROUTES if routes is None else routes, key=lambda s: (s.path, s.method)
    ):
        if "{*" in spec.path:
            continue  # the routing fallback is not an operation
        path = "/" + re.sub(r"{(\w+)(:[^}]*)?\??}", r"{\1}", spec.path)
        paths.setdefault(path, {})[spec.method.lower()] = _operation(spec, components)
    return {
        "openapi": OPENAPI_31,
        "info": {
            "title": TITLE,
            "version": VERSION,
            "description": "CQRS order management: commands write Azure SQL, queries read Cosmos DB.",
        },
        "servers": [{"url": "/api"}],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(components.items())),
            "parameters": HEADER_PARAMETERS,
            "securitySchemes": {"entraId": ENTRA_ID_SCHEME},
        },
        "security": [{"entraId": []}],
    }


# --- the 3.0 rendering -----------------------------------------------------------------------

# JSON Schema keywords OpenAPI 3.0's schema object does not have and this module has no
# rendering for: a model that produces one fails the generation instead of shipping it.
_NOT_IN_30 = (
    "$defs",
    "$id",
    "$anchor",
    "$schema",
    "$comment",
    "$dynamicRef",
    "$dynamicAnchor",
    "prefixItems",
    "if",
    "then",
    "else",
    "dependentRequired",
    "dependentSchemas",
    "unevaluatedItems",
    "unevaluatedProperties",
    "contains",
    "minContains",
    "maxContains",
    "propertyNames",
    "patternProperties",
    "contentEncoding",
    "contentMediaType",
    "contentSchema",
)


def _refuse_31_only(out: dict[str, Any]) -> dict[str, Any]:
    for key in _NOT_IN_30:
        if key in out:
            raise ValueError(f"no OpenAPI 3.0 rendering for {key!r} in {out}")
    return out


def _const_and_examples(out: dict[str, Any]) -> dict[str, Any]:
    if "const" in out:
        out["enum"] = [out.pop("const")]
    if "examples" in out:
        examples = out.pop("examples")
        if examples and "example" not in out:
            out["example"] = examples[0]
    return out


def _exclusive_bounds(out: dict[str, Any]) -> dict[str, Any]:
    """3.1's numeric exclusive bounds as 3.0's boolean flags on minimum/maximum."""
    for exclusive, bound, sign in (
        ("exclusiveMinimum", "minimum", 1),
        ("exclusiveMaximum", "maximum", -1),
    ):
        value = out.get(exclusive)
        if isinstance(value, bool) or value is None:
            continue
        if bound in out and sign * (out[bound] - value) > 0:
            del out[exclusive]  # the inclusive bound is the stricter one already
        else:
            out[bound], out[exclusive] = value, True
    return out


def _type_list(out: dict[str, Any]) -> dict[str, Any]:
    """`type: [a, "null"]` as one type (or anyOf) plus `nullable`."""
    if not isinstance(out.get("type"), list):
        return out
    types = [t for t in out["type"] if t != "null"]
    nullable = len(types) < len(out["type"])
    del out["type"]
    if len(types) == 1:
        out["type"] = types[0]
    elif types:
        out["anyOf"] = [{"type": t} for t in types]
    if nullable:
        out["nullable"] = True
    return out


def _null_branches(out: dict[str, Any]) -> dict[str, Any]:
    """A `{"type": "null"}` branch of anyOf/oneOf as `nullable`."""
    for key in ("anyOf", "oneOf"):
        branches = out.get(key)
        if not branches or _NULL not in branches:
            continue
        rest = [b for b in branches if b != _NULL]
        outer = {k: v for k, v in out.items() if k != key}
        if len(rest) > 1:
            out = {**outer, key: rest, "nullable": True}
        elif "$ref" in rest[0]:
            out = {**outer, "allOf": rest, "nullable": True}
        else:
            out = {**rest[0], **outer, "nullable": True}
    return out


def _ref_siblings(out: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in out and len(out) > 1:
        # A $ref's siblings are ignored in 3.0: wrap it.
        ref = out.pop("$ref")
        out = {"allOf": [{"$ref": ref}], **out}
    if out.get("default", 0) is None and not out.get("nullable"):
        del out["default"]
    return out


# Each step takes and returns one schema node (a copy it may change).
_STEPS_30 = (
    _refuse_31_only,
    _const_and_examples,
    _exclusive_bounds,
    _type_list,
    _null_branches,
    _ref_siblings,
)


def _schema_30(schema: dict[str, Any]) -> dict[str, Any]:
    """One schema node, its subschemas already rendered, as OpenAPI 3.0 says it."""
    out = dict(schema)
    for step in _STEPS_30:
        out = step(out)
    return out


def schema_30(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON Schema 2020-12 schema (as OpenAPI 3.1 uses it) rendered for OpenAPI 3.0."""
    return map_schema(schema, _schema_30)


def _media_30(content: dict[str, Any]) -> dict[str, Any]:
    return {
        media: {**body, "schema": schema_30(body["schema"])}
        if "schema" in body
        else body
        for media, body in content.items()
    }


def _parameter_30(param: dict[str, Any]) -> dict[str, Any]:
    return (
        {**param, "schema": schema_30(param["schema"])} if "schema" in param else param
    )


def _operation_30(op: dict[str, Any]) -> dict[str, Any]:
    op = dict(op)
    op["parameters"] = [_parameter_30(p) for p in op.get("parameters", [])]
    if "requestBody" in op:
        body = op["requestBody"]
        op["requestBody"] = {**body, "content": _media_30(body["content"])}
    op["responses"] = {
        status: {**r, "content": _media_30(r["content"])} if "content" in r else r
        for status, r in op["responses"].items()
    }
    return op


def _refuse_31_document(document: dict[str, Any]) -> None:
    if "webhooks" in document or "jsonSchemaDialect" in document:
        raise ValueError("webhooks and jsonSchemaDialect have no OpenAPI 3.0 rendering")
    info = document["info"]
    if "summary" in info or "identifier" in info.get("license", {}):
        raise ValueError("info.summary and license.identifier are OpenAPI 3.1 only")
    if "pathItems" in document["components"]:
        raise ValueError("components.pathItems is OpenAPI 3.1 only")


def to_openapi_30(document: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI 3.1 document of this module rendered as OpenAPI 3.0.3."""
    _refuse_31_document(document)
    paths = {
        path: {method: _operation_30(op) for method, op in item.items()}
        for path, item in document["paths"].items()
    }
    components = dict(document["components"])
    components["schemas"] = {
        name: schema_30(schema) for name, schema in components["schemas"].items()
    }
    components["parameters"] = {
        name: _parameter_30(p) for name, p in components.get("parameters", {}).items()
    }
    return {**document, "openapi": OPENAPI_30, "paths": paths, "components": components}


def build_document_30(routes: Iterable[RouteSpec] | None = None) -> dict[str, Any]:
    """The OpenAPI 3.0.3 rendering API Management imports (infra/openapi.json)."""
    return to_openapi_30(build_document(routes))


def write(routes: Iterable[RouteSpec], version: str, out: TextIO) -> None:
    """Write the document of `routes` as JSON: OpenAPI 3.0 (what API Management imports)
    or 3.1 (what the app serves)."""
    document = build_document_30(routes) if version == "3.0" else build_document(routes)
    json.dump(document, out, indent=2, sort_keys=False)
    out.write("\n")
