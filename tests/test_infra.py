"""Offline checks of infra/ (Bicep): every file parses, and modules, parameters and outputs
line up as the Bicep compiler would check.

The other checks of infra/ sit beside this file, one concern each: test_infra_topology.py,
test_infra_function_app.py, test_infra_identity.py, test_infra_secrets.py,
test_infra_apim.py, test_infra_deploy.py and test_infra_checkov.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.infra_support import (
    APP,
    BICEP_FILES,
    INFRA,
    main_modules,
    parsed,
    rel,
    tree_sitter_parser,
)


def test_infra_has_the_expected_bicep_files():
    names = {rel(p) for p in BICEP_FILES}
    assert "main.bicep" in names
    for module in (
        "monitoring",
        "identity",
        "storage",
        "eventhubs",
        "cosmos",
        "sql",
        "function",
        "rbac",
        "apim",
    ):
        assert f"app/{module}.bicep" in names


def syntax_errors(source: bytes) -> list[str]:
    tree = tree_sitter_parser().parse(source)
    found: list[str] = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            kind = "MISSING" if node.is_missing else "ERROR"
            found.append(
                f"{kind} at line {node.start_point[0] + 1}, column {node.start_point[1] + 1}"
            )
        stack.extend(node.children)
    return found


def test_tree_sitter_reports_a_broken_file():
    # The check below must be able to fail: a missing brace and a dangling operator.
    assert syntax_errors(
        b"param x string = \nresource r 'A/b@2020-01-01' = {\n  name: 'r'\n"
    )
    assert not syntax_errors(b"param x string = 'a'\n")


@pytest.mark.parametrize("path", BICEP_FILES, ids=rel)
def test_bicep_parses_with_tree_sitter(path: Path):
    assert syntax_errors(path.read_bytes()) == []


@pytest.mark.parametrize("path", BICEP_FILES, ids=rel)
def test_bicep_parses_with_pycep(path: Path):
    # pycep is the parser checkov reads Bicep with (checkov 3.3.30 pins pycep-parser 0.5.1;
    # 0.7.1, which requirements-infra.txt installs, is stricter, e.g. it rejects
    # `[for x in xs: if (c) {...}]`, so avoid that form).
    tree = parsed(path)
    assert tree.get("resources") or tree.get("modules"), "no resource or module parsed"


@pytest.mark.parametrize("path", BICEP_FILES, ids=rel)
def test_every_parameter_is_described(path: Path):
    for name, param in parsed(path).get("parameters", {}).items():
        kinds = {d["type"] for d in param.get("decorators", [])}
        assert "description" in kinds, f"param {name} has no @description"


def test_main_uses_every_module_file():
    used = {(INFRA / m["detail"]["path"]).resolve() for m in main_modules().values()}
    assert {p.resolve() for p in BICEP_FILES if p.parent == APP} == used


# Collected by text, so a parse failure fails the tests instead of breaking collection.
MAIN_MODULE_SYMBOLS = sorted(
    re.findall(r"^module (\w+) ", (INFRA / "main.bicep").read_text(), re.MULTILINE)
)


@pytest.mark.parametrize("symbol", MAIN_MODULE_SYMBOLS)
def test_module_call_matches_module_parameters(symbol: str):
    module = main_modules()[symbol]
    declared = parsed(INFRA / module["detail"]["path"]).get("parameters", {})
    passed = set(module["config"].get("params", {}))
    assert passed <= set(declared), (
        f"unknown parameters {sorted(passed - set(declared))}"
    )
    required = {name for name, p in declared.items() if p.get("default") is None}
    assert required <= passed, (
        f"required parameters not passed {sorted(required - passed)}"
    )


def test_module_outputs_referenced_in_main_exist():
    text = (INFRA / "main.bicep").read_text()
    modules = main_modules()
    for symbol, output in re.findall(r"\b(\w+)\.outputs\.(\w+)", text):
        assert symbol in modules, f"{symbol} is not a module"
        outputs = parsed(INFRA / modules[symbol]["detail"]["path"]).get("outputs", {})
        assert output in outputs, f"module {symbol} has no output {output}"


def test_main_parameters_file_matches_main():
    params = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    declared = parsed(INFRA / "main.bicep")["parameters"]
    assert set(params) <= set(declared)
    required = {name for name, p in declared.items() if p.get("default") is None}
    assert required <= set(params)
    assert params["environmentName"]["value"] == "${AZURE_ENV_NAME}"
    assert params["location"]["value"] == "${AZURE_LOCATION}"
    assert params["principalId"]["value"] == "${AZURE_PRINCIPAL_ID}"


def test_main_follows_azd_conventions():
    tree = parsed(INFRA / "main.bicep")
    assert tree["globals"]["scope"]["value"] == "subscription"
    assert {"environmentName", "location", "principalId"} <= set(tree["parameters"])
    text = (INFRA / "main.bicep").read_text()
    assert "'azd-env-name': environmentName" in text
    assert "loadJsonContent('abbreviations.json')" in text
    abbreviations = json.loads((INFRA / "abbreviations.json").read_text())
    for key in re.findall(r"abbrs\.(\w+)", text):
        assert key in abbreviations, f"abbreviations.json has no {key}"
    function = (APP / "function.bicep").read_text()
    assert "'azd-service-name': serviceName" in function
    assert main_modules()["functionApp"]["config"]["params"]["serviceName"] == "api"
