"""The OpenAPI 3.1 document, generated from the route declarations (shared.http.ROUTES).

`python -m shared.openapi > infra/openapi.json` writes the copy API Management
imports; a test keeps that copy equal to what the app serves.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from pydantic import BaseModel

from shared.http import ROUTES, RouteSpec

TITLE = "Orders API"
VERSION = "1.0.0"

_STATUS_TEXT = {
    400: "Bad request",
    404: "Not found",
    405: "Method not allowed",
    409: "Business rule refused",
    412: "Version mismatch (If-Match)",
    413: "Body too large",
    415: "Body is not application/json",
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


def _schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, str]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in schema.pop("$defs", {}).items():
        components[name] = definition
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _parameters(spec: RouteSpec) -> list[dict[str, Any]]:
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{(\w+)", spec.path)
    ]
    if spec.query is not None:
        for name, field in spec.query.model_fields.items():
            schema = spec.query.model_json_schema()["properties"][name]
            params.append(
                {
                    "name": name,
                    "in": "query",
                    "required": field.is_required(),
                    "schema": schema,
                }
            )
    if spec.idempotent:
        params.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
            }
        )
    if spec.conditional:
        params.append(
            {
                "name": "If-Match",
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
            }
        )
    params.append(
        {
            "name": "X-Correlation-Id",
            "in": "header",
            "required": False,
            "schema": {"type": "string"},
        }
    )
    return params


def build_document() -> dict[str, Any]:
    components: dict[str, Any] = {"Problem": PROBLEM_SCHEMA}
    paths: dict[str, Any] = {}
    for spec in sorted(ROUTES, key=lambda s: (s.path, s.method)):
        if "{*" in spec.path:
            continue  # the routing fallback is not an operation
        path = "/" + re.sub(r"{(\w+)(:[^}]*)?\??}", r"{\1}", spec.path)
        operation: dict[str, Any] = {
            "operationId": spec.name,
            "summary": spec.summary,
            "tags": [spec.tag],
            "parameters": _parameters(spec),
            "responses": {},
        }
        if spec.body is not None and spec.body.model_fields:
            operation["requestBody"] = {
                "required": True,
                "content": {
                    "application/json": {"schema": _schema(spec.body, components)}
                },
            }
        success: dict[str, Any] = {
            "description": "Accepted" if spec.status == 202 else "OK"
        }
        if spec.response is not None:
            success["content"] = {
                spec.content_type: {"schema": _schema(spec.response, components)}
            }
        elif spec.content_type != "application/json":
            success["content"] = {spec.content_type: {"schema": {"type": "object"}}}
        operation["responses"][str(spec.status)] = success
        for status in spec.errors:
            operation["responses"][str(status)] = {
                "description": _STATUS_TEXT.get(status, "Error"),
                "content": {
                    "application/problem+json": {
                        "schema": {"$ref": "#/components/schemas/Problem"}
                    }
                },
            }
        if spec.anonymous:
            operation["security"] = []
        paths.setdefault(path, {})[spec.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": TITLE,
            "version": VERSION,
            "description": "CQRS order management: commands write Azure SQL, queries read Cosmos DB.",
        },
        "servers": [{"url": "/api"}],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(components.items())),
            "securitySchemes": {
                "functionKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "x-functions-key",
                }
            },
        },
        "security": [{"functionKey": []}],
    }


def main() -> int:
    import function_app  # noqa: F401 - registering the blueprints fills ROUTES

    json.dump(build_document(), sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
