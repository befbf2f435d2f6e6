"""The OpenAPI document: generated from the route declarations, and the checked-in copy that
API Management imports (infra/openapi.json) is the same document the app serves."""

import json
from pathlib import Path

import function_app  # noqa: F401 - registers the routes
from shared.http import ROUTES
from shared.openapi import build_document

CHECKED_IN = Path(__file__).parents[1] / "infra" / "openapi.json"


def test_checked_in_document_equals_the_generated_one():
    assert json.loads(CHECKED_IN.read_text()) == json.loads(
        json.dumps(build_document())
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
        assert set(op["responses"]) == {str(spec.status), *map(str, spec.errors)}


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
