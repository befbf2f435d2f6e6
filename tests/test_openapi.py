"""The OpenAPI documents: generated from the route declarations; the app serves 3.1, and
the checked-in copy API Management imports (infra/openapi.json) is the 3.0.3 rendering
of the same document, agreeing with it on every operation."""

import json
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import OpenAPIV30SpecValidator, OpenAPIV31SpecValidator

import function_app  # noqa: F401 - registers the routes
from shared import formats, http
from shared.http import ROUTES
from shared.openapi import build_document, build_document_30, to_openapi_30

CHECKED_IN = Path(__file__).parents[1] / "infra" / "openapi.json"
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def test_checked_in_document_equals_the_generated_one():
    assert json.loads(CHECKED_IN.read_text()) == json.loads(
        json.dumps(build_document_30())
    ), "infra/openapi.json is stale: run `make openapi`"


def test_every_route_is_an_operation_with_its_errors():
    document = build_document()
    operations = {
        (method.upper(), path): op
        for path, item in document["paths"].items()
        for method, op in item.items()
    }
    for spec in ROUTES:
        if spec.method == "ANY":
            continue
        path = "/" + spec.path
        op = operations[(spec.method, path)]
        assert op["operationId"] == spec.name
        # 503: any request can meet an unavailable dependency (shared.http.handle).
        # 401/403: every route that needs a token (shared.auth).
        auth = set() if spec.anonymous else {"401", "403"}
        assert set(op["responses"]) == {
            str(spec.status),
            *map(str, spec.errors),
            "503",
            *auth,
        }
        assert "Retry-After" in op["responses"]["503"]["headers"]


def test_request_schemas_forbid_unknown_fields_and_money_is_a_number():
    schemas = build_document()["components"]["schemas"]
    order = schemas["PlaceOrder"]
    assert order["additionalProperties"] is False
    line = schemas["OrderLineRequest"]
    assert line["additionalProperties"] is False and set(line["properties"]) == {
        "productId",
        "quantity",
    }
    price = schemas["CreateProduct"]["properties"]["price"]
    assert price["type"] == "number" and price["minimum"] == 0.01


# --- both documents are valid OpenAPI of their version ------------------------------------


def test_the_served_document_is_valid_openapi_31():
    errors = list(OpenAPIV31SpecValidator(build_document()).iter_errors())
    assert not errors, [str(e)[:300] for e in errors]


def test_the_api_management_copy_is_valid_openapi_30():
    document = build_document_30()
    assert document["openapi"] == "3.0.3"
    errors = list(OpenAPIV30SpecValidator(document).iter_errors())
    assert not errors, [str(e)[:300] for e in errors]


ONLY_31_KEYWORDS = {
    "const",
    "examples",
    "prefixItems",
    "$defs",
    "$id",
    "$anchor",
    "$schema",
    "$dynamicRef",
    "$dynamicAnchor",
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
}


def _schemas_of(document: dict[str, Any]) -> list[tuple[str, Any]]:
    """Every schema object of the document, with where it is (top-level ones only)."""
    found = [
        (f"components/schemas/{name}", s)
        for name, s in document["components"]["schemas"].items()
    ]
    found += [
        (f"components/parameters/{name}", p["schema"])
        for name, p in document["components"].get("parameters", {}).items()
    ]
    for path, item in document["paths"].items():
        for method, op in item.items():
            where = f"{method.upper()} {path}"
            found += [
                (f"{where} parameter {p['name']}", p["schema"])
                for p in op.get("parameters", [])
                if "schema" in p
            ]
            bodies = [op.get("requestBody", {})] + list(op["responses"].values())
            found += [
                (f"{where} {media}", content["schema"])
                for body in bodies
                for media, content in body.get("content", {}).items()
            ]
    return found


def _only_31(schema: Any, where: str) -> list[str]:
    """The OpenAPI 3.1-only constructs in `schema` and its subschemas."""
    found: list[str] = []
    if isinstance(schema, list):
        for i, item in enumerate(schema):
            found += _only_31(item, f"{where}/{i}")
        return found
    if not isinstance(schema, dict):
        return found
    for key, value in schema.items():
        if key == "properties":
            for name, sub in value.items():
                found += _only_31(sub, f"{where}/properties/{name}")
            continue
        here = f"{where}/{key}"
        if key in ONLY_31_KEYWORDS:
            found.append(here)
        elif key == "type" and not isinstance(value, str):
            found.append(f"{here} (a list)")
        elif key == "type" and value == "null":
            found.append(f"{here} (null)")
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(
            value, bool
        ):
            found.append(f"{here} (a number)")
        elif key == "$ref" and len(schema) > 1:
            found.append(f"{here} (with siblings, ignored in 3.0)")
        found += _only_31(value, here) if isinstance(value, dict | list) else []
    return found


def test_the_api_management_copy_has_no_openapi_31_construct():
    document = build_document_30()
    assert not {"webhooks", "jsonSchemaDialect"} & set(document)
    assert "summary" not in document["info"]
    assert "identifier" not in document["info"].get("license", {})
    assert "pathItems" not in document["components"]
    found = [hit for where, s in _schemas_of(document) for hit in _only_31(s, where)]
    assert not found, found
    # The check itself finds what it is for, in the 3.1 document.
    assert [
        hit for where, s in _schemas_of(build_document()) for hit in _only_31(s, where)
    ]


# --- the two documents agree on every operation -------------------------------------------


def _resolved(node: Any, document: dict[str, Any]) -> Any:
    if isinstance(node, dict) and "$ref" in node and len(node) == 1:
        *_, section, name = node["$ref"].split("/")
        return _resolved(document["components"][section][name], document)
    return node


def _meaning(schema: Any, document: dict[str, Any], version: str) -> Any:
    """What a schema allows, in one form for both versions: references inlined, null as a
    flag, const as a one-value enum, exclusive bounds as (bound, exclusive), no examples.

    Written apart from shared.openapi's renderer, so a renderer mistake shows up here."""
    schema = _resolved(schema, document)
    if isinstance(schema, list):
        return [_meaning(s, document, version) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    out.pop("example", None)
    out.pop("examples", None)
    nullable = False
    if version == "3.0":
        nullable = out.pop("nullable", False)
        if set(out) >= {"allOf"} and len(out["allOf"]) == 1:
            # allOf: [$ref] is how 3.0 gives a reference siblings (or nullability).
            out = {**_resolved(out.pop("allOf")[0], document), **out}
        for key in ("minimum", "maximum"):
            exclusive = "exclusiveM" + key[1:]
            if key in out:
                out[key] = (out[key], out.pop(exclusive, False))
    else:
        for key in ("anyOf", "oneOf"):
            if {"type": "null"} in out.get(key, []):
                nullable = True
                rest = [b for b in out.pop(key) if b != {"type": "null"}]
                out = (
                    {**_resolved(rest[0], document), **out}
                    if len(rest) == 1
                    else {
                        **out,
                        key: rest,
                    }
                )
        if isinstance(out.get("type"), list):
            types = [t for t in out.pop("type") if t != "null"]
            nullable = nullable or len(types) < len(schema["type"])
            out["type"] = types[0] if len(types) == 1 else types
        if "const" in out:
            out["enum"] = [out.pop("const")]
        for key in ("minimum", "maximum"):
            exclusive = "exclusiveM" + key[1:]
            if exclusive in out:
                out[key] = (out.pop(exclusive), True)
            elif key in out:
                out[key] = (out[key], False)
    if not nullable and out.get("default", 0) is None:
        del out["default"]
    result = {k: _meaning(v, document, version) for k, v in out.items()}
    if "properties" in out:
        result["properties"] = {
            name: _meaning(s, document, version)
            for name, s in out["properties"].items()
        }
    result["nullable"] = nullable
    return result


def _operations(document: dict[str, Any], version: str) -> dict[tuple[str, str], Any]:
    operations = {}
    for path, item in document["paths"].items():
        for method, op in item.items():
            assert method in METHODS, method
            parameters = {}
            for param in op.get("parameters", []):
                param = _resolved(param, document)
                parameters[(param["in"], param["name"])] = {
                    "required": param.get("required", False),
                    "description": param.get("description"),
                    "schema": _meaning(param["schema"], document, version),
                }
            body = op.get("requestBody")
            operations[(method, path)] = {
                "operationId": op["operationId"],
                "summary": op.get("summary"),
                "tags": op.get("tags"),
                "security": op.get("security"),
                "parameters": parameters,
                "requestBody": body
                and {
                    "required": body.get("required", False),
                    "content": {
                        media: _meaning(c["schema"], document, version)
                        for media, c in body["content"].items()
                    },
                },
                "responses": {
                    status: {
                        "description": r["description"],
                        "content": {
                            media: _meaning(c.get("schema"), document, version)
                            for media, c in r.get("content", {}).items()
                        },
                    }
                    for status, r in op["responses"].items()
                },
            }
    return operations


def test_the_two_documents_agree_on_every_operation():
    served, imported = build_document(), build_document_30()
    ops_31, ops_30 = _operations(served, "3.1"), _operations(imported, "3.0")
    assert set(ops_30) == set(ops_31)
    assert len(ops_31) == len([s for s in ROUTES if s.method != "ANY"])
    for key, operation in ops_31.items():
        assert ops_30[key] == operation, key
    assert imported["servers"] == served["servers"]
    assert imported["security"] == served["security"]
    assert (
        imported["components"]["securitySchemes"]
        == served["components"]["securitySchemes"]
    )


def test_the_agreement_check_sees_a_difference():
    imported = build_document_30()
    schema = imported["components"]["schemas"]["AdjustStock"]["properties"]["delta"]
    schema["maximum"] = 5
    assert _operations(imported, "3.0") != _operations(build_document(), "3.0")


@pytest.mark.parametrize(
    ("schema_31", "schema_30"),
    [
        ({"const": 0}, {"enum": [0]}),
        (
            {"type": "integer", "not": {"const": 0}},
            {"type": "integer", "not": {"enum": [0]}},
        ),
        (
            {"type": "string", "examples": ["a", "b"]},
            {"type": "string", "example": "a"},
        ),
        (
            {"type": "number", "exclusiveMinimum": 0},
            {"type": "number", "minimum": 0, "exclusiveMinimum": True},
        ),
        (
            {"type": "number", "minimum": 5, "exclusiveMinimum": 0},
            {"type": "number", "minimum": 5},
        ),
        ({"type": ["string", "null"]}, {"type": "string", "nullable": True}),
        (
            {
                "anyOf": [{"type": "string", "maxLength": 3}, {"type": "null"}],
                "default": None,
            },
            {"type": "string", "maxLength": 3, "nullable": True, "default": None},
        ),
        (
            {"anyOf": [{"$ref": "#/components/schemas/X"}, {"type": "null"}]},
            {"allOf": [{"$ref": "#/components/schemas/X"}], "nullable": True},
        ),
        (
            {"$ref": "#/components/schemas/X", "description": "d"},
            {"allOf": [{"$ref": "#/components/schemas/X"}], "description": "d"},
        ),
        (
            {
                "type": "array",
                "items": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
            },
            {"type": "array", "items": {"type": "integer", "nullable": True}},
        ),
    ],
)
def test_each_31_construct_has_its_30_rendering(schema_31, schema_30):
    document = build_document()
    document["components"]["schemas"] = {"X": {"type": "object"}, "S": schema_31}
    assert to_openapi_30(document)["components"]["schemas"]["S"] == schema_30


@pytest.mark.parametrize(
    "schema", [{"prefixItems": [{}]}, {"$defs": {"a": {}}}, {"if": {}, "then": {}}]
)
def test_a_construct_without_a_30_rendering_fails_the_generation(schema):
    document = build_document()
    document["components"]["schemas"] = {
        "S": {"type": "object", "properties": {"a": schema}}
    }
    with pytest.raises(ValueError, match="no OpenAPI 3.0 rendering"):
        to_openapi_30(document)


# --- the document states the server's rules --------------------------------------------------


def test_header_rules_are_the_ones_the_server_applies():
    parameters = build_document()["components"]["parameters"]
    assert parameters["CorrelationId"]["schema"]["pattern"] == formats.CORRELATION_ID
    assert http._CORRELATION_ID.pattern == formats.CORRELATION_ID
    assert parameters["IdempotencyKey"]["schema"]["pattern"] == formats.IDEMPOTENCY_KEY
    assert parameters["IfMatch"]["schema"]["pattern"] == formats.IF_MATCH


def test_optional_fields_are_left_out_never_null_in_requests():
    document = build_document()
    for name in ("ChangeCustomer", "ChangeProduct"):
        schema = document["components"]["schemas"][name]
        assert schema["minProperties"] == 1
        assert "null" not in json.dumps(schema)
    for path, item in document["paths"].items():
        for op in item.values():
            for param in op["parameters"]:
                assert "null" not in json.dumps(param.get("schema", {})), (path, param)


def test_ids_in_paths_are_uuids():
    for path, item in build_document()["paths"].items():
        for op in item.values():
            for param in op["parameters"]:
                if param.get("in") == "path" and param["name"].endswith("Id"):
                    assert param["schema"]["pattern"] == formats.UUID, path
