"""What the offline checks of infra/ share: paths, the parsed Bicep, and helpers to read it.

The Bicep is read without the Bicep compiler or Azure, by two real parsers:
tree-sitter-bicep, and pycep (the parser checkov itself uses). The checks live in
tests/test_infra*.py, one file per concern.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import tree_sitter
import tree_sitter_bicep
from pycep import BicepParser

REPO = Path(__file__).resolve().parent.parent


INFRA = REPO / "infra"


APP = INFRA / "app"


TOPOLOGY_FILE = REPO / "shared" / "topology.json"


BICEP_FILES = sorted(INFRA.rglob("*.bicep"))


SKIPS_FILE = Path(__file__).with_name("checkov_skips.json")


# Limits of the platform that a Bicep compiler would not catch either.
LOAD_TEXT_CONTENT_MAX_CHARS = 131_072  # Bicep loadTextContent()


COSMOS_INDEXING_POLICY_KEYS = {
    "automatic",
    "indexingMode",
    "includedPaths",
    "excludedPaths",
    "compositeIndexes",
    "spatialIndexes",
}


def rel(path: Path) -> str:
    return path.relative_to(INFRA).as_posix()


@cache
def topology() -> dict[str, Any]:
    return json.loads(TOPOLOGY_FILE.read_text())


@cache
def parsed(path: Path) -> dict[str, Any]:
    return BicepParser().parse(file_path=path)


def render(node: Any) -> str:
    """A pycep expression back to Bicep-like text (enough to compare references)."""
    if isinstance(node, dict):
        if "operator" in node:
            op = node["operator"]
            operands = op.get("operands", {})
            if op["type"] == "property_accessor":
                return (
                    f"{render(operands['operand_1'])}.{render(operands['operand_2'])}"
                )
            return f"{op['type']}({', '.join(render(v) for v in operands.values())})"
        if "function" in node:
            fn = node["function"]
            args = ", ".join(
                render(v)
                for v in (fn.get("parameters") or {}).values()
                if v is not None
            )
            return f"{fn['type']}({args})"
        return json.dumps(node, sort_keys=True, default=str)
    return str(node)


def walk(node: Any):
    """Every dict and value nested in a pycep tree."""
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def resources(path: Path) -> dict[str, dict[str, Any]]:
    return parsed(path).get("resources", {})


def resource_body(resource: dict[str, Any]) -> dict[str, Any]:
    """The object of a resource, looking through a `[for ...]` loop or an `if (...)`."""
    body = resource["config"]
    return body["config"] if "loop_type" in body or "condition" in body else body


def loop_source(resource: dict[str, Any]) -> str:
    """The array expression a `[for x in <array>: ...]` resource iterates, as text."""
    body = resource["config"]
    assert "loop_type" in body, "not a loop"
    return render(body["loop_type"]["detail"]["array_name"])


def loop_item(resource: dict[str, Any]) -> str:
    return resource["config"]["loop_type"]["detail"]["item_name"]


def topology_variable(path: Path) -> str:
    """The variable of `path` that loads shared/topology.json (its path resolved from the file)."""
    for name, var in parsed(path).get("variables", {}).items():
        value = var.get("value")
        if (
            isinstance(value, dict)
            and value.get("function", {}).get("type") == "load_json_content"
        ):
            target = (
                path.parent / value["function"]["parameters"]["file_path"]
            ).resolve()
            if target == TOPOLOGY_FILE:
                return name
    raise AssertionError(f"{rel(path)} does not loadJsonContent() shared/topology.json")


@cache
def tree_sitter_parser() -> tree_sitter.Parser:
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_bicep.language()))


def declared_resources(path: Path) -> list[tuple[str, str, bool]]:
    """(symbol, type, existing) of every top-level resource declaration, by tree-sitter."""
    tree = tree_sitter_parser().parse(path.read_bytes())
    found = []
    for node in tree.root_node.children:
        if node.type != "resource_declaration":
            continue
        kinds = {c.type: c for c in node.children}
        type_name = kinds["string"].text.decode().strip("'").split("@")[0]
        found.append(
            (kinds["identifier"].text.decode(), type_name, "existing" in kinds)
        )
    return found


def main_modules() -> dict[str, dict[str, Any]]:
    return parsed(INFRA / "main.bicep")["modules"]


def app_settings() -> dict[str, Any]:
    return resource_body(resources(APP / "function.bicep")["appSettings"])["properties"]


def infra_text_files() -> list[Path]:
    return sorted(
        p
        for p in INFRA.rglob("*")
        if p.is_file() and p.suffix in {".bicep", ".json", ".xml", ".sh", ".sql"}
    )
