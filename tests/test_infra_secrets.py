"""Offline checks of infra/: no secret in templates, parameters or outputs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.infra_support import (
    BICEP_FILES,
    INFRA,
    app_settings,
    infra_text_files,
    parsed,
    rel,
    render,
    tree_sitter_parser,
    walk,
)

SECRET_PATTERNS = [
    re.compile(p, re.IGNORECASE)
    for p in (
        r"AccountKey\s*=",
        r"SharedAccessKey\s*=",
        r"(?<![A-Za-z])(Password|Pwd)\s*=",
        r"-----BEGIN [A-Z ]*PRIVATE KEY",
        r"[A-Za-z0-9+/]{40,}={1,2}",  # base64 key material
    )
]


SECRETISH_NAME = re.compile(
    r"key|secret|password|connectionstring|token|sas", re.IGNORECASE
)


@pytest.mark.parametrize("path", infra_text_files(), ids=rel)
def test_no_secret_literals_in_infra(path: Path):
    text = path.read_text()
    for pattern in SECRET_PATTERNS:
        assert not pattern.search(text), f"{pattern.pattern} in {rel(path)}"


def bicep_calls(path: Path) -> list[str]:
    """The callee of every function call in a Bicep file (comments and strings excluded)."""
    return bicep_calls_of_source(path.read_bytes())


def test_no_template_reads_a_key_with_a_list_function():
    # No host key is needed (the app validates Entra tokens), and listKeys() on a new
    # Function App fails while its host has not started (Azure/azure-functions-host#5722,
    # #6568). No other list*() either: templates hold no secret.
    for path in BICEP_FILES:
        calls = [c for c in bicep_calls(path) if re.search(r"(^|\.)list\w*$", c)]
        assert not calls, (rel(path), calls)
        assert not [
            n
            for n in walk(parsed(path))
            if isinstance(n, dict) and n.get("function", {}).get("type") == "list_func"
        ], rel(path)
        assert "Microsoft.ApiManagement/service/namedValues" not in path.read_text()
    assert "listKeys" in bicep_calls_of_source(b"var k = listKeys(x, '2024-04-01')")
    assert "app.listKeys" in bicep_calls_of_source(b"var k = app.listKeys()")


def bicep_calls_of_source(source: bytes) -> list[str]:
    """The callees of the function calls in Bicep source (also a snippet, to show the
    check sees both call forms)."""
    tree = tree_sitter_parser().parse(source)
    found, stack = [], [tree.root_node]
    while stack:
        node = stack.pop()
        if node.type == "call_expression":
            found.append(node.children[0].text.decode())
        stack.extend(node.children)
    return found


@pytest.mark.parametrize("path", BICEP_FILES, ids=rel)
def test_secure_parameters_have_no_default(path: Path):
    for name, param in parsed(path).get("parameters", {}).items():
        kinds = {d["type"] for d in param.get("decorators", [])}
        if "secure" in kinds:
            assert param.get("default") is None, f"@secure() param {name} has a default"


@pytest.mark.parametrize("path", BICEP_FILES, ids=rel)
def test_outputs_carry_no_secret(path: Path):
    for name, output in parsed(path).get("outputs", {}).items():
        assert not SECRETISH_NAME.search(name), f"output {name} looks secret"
        value = render(output.get("value"))
        assert "list_func" not in value, f"output {name} calls list*()"
        assert not re.search(
            r"connectionstring|instrumentationkey|primarykey|masterkey",
            value,
            re.IGNORECASE,
        ), name


def test_parameters_file_holds_no_secret():
    params = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    for name, entry in params.items():
        assert not SECRETISH_NAME.search(name), name
        assert "reference" not in entry, (
            f"{name} pulls a Key Vault secret into the deployment"
        )


def test_only_the_insights_connection_string_is_read_from_a_resource():
    # The Application Insights connection string names the component, it grants nothing
    # (local auth is off); no other app setting may read a credential-like property.
    for name, value in app_settings().items():
        text = render(value)
        if "ConnectionString" in text:
            assert name == "APPLICATIONINSIGHTS_CONNECTION_STRING", name
