"""Offline checks of infra/ (Bicep), the azd and Docker files, against the code.

The Bicep is checked without the Bicep compiler or Azure, by what runs offline:
- two real parsers (tree-sitter-bicep, and pycep, the parser checkov itself uses);
- checkov's security rules, with a failure list that must match tests/checkov_skips.json
  and a coverage check, because checkov skips a file it cannot parse and still exits 0;
- cross-checks with the code: every required app setting of shared/config.py is set on
  the Function App, names come from shared/topology.json through loops, module
  parameters and outputs line up, nothing secret sits in templates or outputs;
- the emulator config, docker-compose, azure.yaml and the postprovision script.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import tree_sitter
import tree_sitter_bicep
import yaml
from pycep import BicepParser

from shared import config

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


# ---------------------------------------------------------------------------------------
# Parsing


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


@cache
def tree_sitter_parser() -> tree_sitter.Parser:
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_bicep.language()))


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


# ---------------------------------------------------------------------------------------
# Modules, parameters and outputs line up (what the Bicep compiler would check)


def main_modules() -> dict[str, dict[str, Any]]:
    return parsed(INFRA / "main.bicep")["modules"]


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


# ---------------------------------------------------------------------------------------
# Topology: names shared by code and infra come from shared/topology.json through loops


def test_topology_names_are_valid_for_azure():
    topo = topology()
    hub = topo["eventHub"]
    assert 1 <= hub["partitionCount"] <= 32
    assert len(set(hub["consumerGroups"])) == len(hub["consumerGroups"])
    for group in hub["consumerGroups"]:
        assert (
            re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,49}", group)
            and group.lower() != "$default"
        ), group
    names = [c["name"] for c in topo["cosmos"]["containers"]]
    assert len(set(names)) == len(names)
    for container in topo["cosmos"]["containers"]:
        assert re.fullmatch(r"[^/\\#?]{1,255}", container["name"])
        assert re.fullmatch(
            r"/[A-Za-z0-9_]+(/[A-Za-z0-9_]+)*", container["partitionKey"]
        ), container["partitionKey"]
        policy = container["indexingPolicy"]
        assert set(policy) <= COSMOS_INDEXING_POLICY_KEYS, (
            f"{container['name']}: {set(policy) - COSMOS_INDEXING_POLICY_KEYS}"
        )
        assert policy.get("indexingMode", "consistent") in {"consistent", "none"}
    for blob_container in topo["storage"].values():
        assert re.fullmatch(
            r"[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]", blob_container
        ), blob_container


def test_event_hub_and_consumer_groups_come_from_topology():
    path = APP / "eventhubs.bicep"
    topo_var = topology_variable(path)
    res = resources(path)
    hub = res["hub"]
    assert render(resource_body(hub)["name"]) == f"{topo_var}.eventHub.name"
    # A deployment parameter (capacity), not the local topology's count.
    assert (
        render(resource_body(hub)["properties"]["partitionCount"]) == "partitionCount"
    )
    groups = res["consumerGroups"]
    assert groups["type"] == "Microsoft.EventHub/namespaces/eventhubs/consumergroups"
    assert loop_source(groups) == f"{topo_var}.eventHub.consumerGroups"
    assert render(resource_body(groups)["name"]) == loop_item(groups)
    assert resource_body(groups)["parent"] == "hub"


def test_cosmos_database_and_containers_come_from_topology():
    path = APP / "cosmos.bicep"
    topo_var = topology_variable(path)
    res = resources(path)
    assert (
        render(resource_body(res["database"])["name"]) == f"{topo_var}.cosmos.database"
    )
    containers = res["containers"]
    item = loop_item(containers)
    assert loop_source(containers) == f"{topo_var}.cosmos.containers"
    body = resource_body(containers)
    assert body["parent"] == "database"
    assert render(body["name"]) == f"{item}.name"
    resource = body["properties"]["resource"]
    assert render(resource["id"]) == f"{item}.name"
    assert [render(p) for p in resource["partitionKey"]["paths"]] == [
        f"{item}.partitionKey"
    ]
    assert render(resource["indexingPolicy"]) == f"{item}.indexingPolicy"


def test_blob_containers_come_from_topology():
    path = APP / "storage.bicep"
    topo_var = topology_variable(path)
    containers = resources(path)["appContainers"]
    assert loop_source(containers) == f"items({topo_var}.storage)"
    assert render(resource_body(containers)["name"]) == f"{loop_item(containers)}.value"


def test_main_reads_topology_from_the_shared_file():
    assert topology_variable(INFRA / "main.bicep") == "topology"


# ---------------------------------------------------------------------------------------
# Function App: settings, identity, Flex Consumption


def app_settings() -> dict[str, Any]:
    return resource_body(resources(APP / "function.bicep")["appSettings"])["properties"]


def test_every_required_setting_is_set_on_the_function_app():
    required = {s.name for s in config.SETTINGS if s.azure == "required"}
    missing = required - set(app_settings())
    assert not missing, (
        f"required settings missing from infra/app/function.bicep: {sorted(missing)}"
    )


def test_no_local_only_setting_reaches_azure():
    local_only = {s.name for s in config.SETTINGS if s.azure == "local-only"}
    assert not local_only & set(app_settings())


def test_every_app_setting_is_declared_or_a_host_setting():
    declared = {s.name for s in config.SETTINGS}
    host = {"APPLICATIONINSIGHTS_AUTHENTICATION_STRING"}
    for name in app_settings():
        prefix, _, suffix = name.partition("__")
        if name in declared or name in host:
            continue
        # Identity-based connection details of a declared or host connection.
        assert suffix in {
            "accountName",
            "credential",
            "clientId",
            "blobServiceUri",
            "fullyQualifiedNamespace",
        }, name
        assert prefix in {"AzureWebJobsStorage"} | {
            s.name.partition("__")[0] for s in config.SETTINGS
        }, name


def test_identity_based_connections_name_the_user_assigned_identity():
    settings = app_settings()
    for prefix in ("AzureWebJobsStorage", "EventHubConnection", "DeadLetterStorage"):
        assert settings[f"{prefix}__credential"] == "managedidentity"
        assert settings[f"{prefix}__clientId"] == "identityClientId"
    assert settings["AZURE_CLIENT_ID"] == "identityClientId"
    assert (
        settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"]
        == "ClientId=${identityClientId};Authorization=AAD"
    )


def test_function_app_holds_the_token_settings():
    # The app validates Microsoft Entra tokens itself with these (shared/auth.py); the values
    # are derived once in main.bicep (tests/test_infra_types.py evaluates them).
    settings = app_settings()
    assert settings["AUTH_ISSUER"] == "authIssuer"
    assert settings["AUTH_AUDIENCE"] == "authAudience"
    assert settings["AUTH_JWKS_URI"] == "authJwksUri"
    params = parsed(APP / "function.bicep")["parameters"]
    client_id = {
        d["type"]: d["argument"] for d in params["authApiClientId"]["decorators"]
    }
    # A GUID, so a deployment without the preprovision hook's value fails.
    assert client_id["min_length"] == client_id["max_length"] == 36
    assert params["authApiClientId"].get("default") is None
    main = parsed(INFRA / "main.bicep")
    outputs = main["outputs"]
    for name in (
        "AUTH_API_CLIENT_ID",
        "AUTH_API_APP_ID_URI",
        "AUTH_ISSUER",
        "AUTH_JWKS_URI",
    ):
        assert name in outputs, name
    assert render(outputs["AUTH_AUDIENCE"]["value"]) == (
        "functionApp.outputs.authAudience"
    )
    params_file = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert params_file["authApiClientId"]["value"] == "${AUTH_API_CLIENT_ID}"
    assert params_file["authApiAppIdUri"]["value"] == "${AUTH_API_APP_ID_URI}"


def test_function_app_is_flex_consumption_python_with_identity_deployment():
    path = APP / "function.bicep"
    res = resources(path)
    plan = resource_body(res["plan"])
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    site = resource_body(res["functionApp"])
    assert site["identity"]["type"] == "UserAssigned"
    assert site["properties"]["httpsOnly"] is True
    app_config = site["properties"]["functionAppConfig"]
    assert app_config["runtime"] == {"name": "python", "version": "pythonVersion"}
    assert parsed(path)["parameters"]["pythonVersion"]["default"] == "3.11"
    auth = app_config["deployment"]["storage"]["authentication"]
    assert auth == {
        "type": "UserAssignedIdentity",
        "userAssignedIdentityResourceId": "identityId",
    }


# ---------------------------------------------------------------------------------------
# Identity everywhere: local auth off, roles granted


def test_local_authentication_is_disabled_everywhere():
    def props(file: str, symbol: str) -> dict[str, Any]:
        return resource_body(resources(APP / file)[symbol])["properties"]

    assert props("cosmos.bicep", "account")["disableLocalAuth"] is True
    assert props("eventhubs.bicep", "namespace")["disableLocalAuth"] is True
    assert props("storage.bicep", "storage")["allowSharedKeyAccess"] is False
    assert props("monitoring.bicep", "applicationInsights")["DisableLocalAuth"] is True
    admins = props("sql.bicep", "server")["administrators"]
    assert admins["azureADOnlyAuthentication"] is True
    assert admins["administratorType"] == "ActiveDirectory"
    assert "administratorLoginPassword" not in props("sql.bicep", "server")


def test_sql_allows_azure_services_through_the_firewall():
    rule = resource_body(resources(APP / "sql.bicep")["allowAzureServices"])[
        "properties"
    ]
    assert rule == {"startIpAddress": "0.0.0.0", "endIpAddress": "0.0.0.0"}


def test_roles_granted_to_the_app_identity():
    text = (APP / "rbac.bicep").read_text()
    for role in (
        "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",  # Storage Blob Data Owner
        "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",  # Storage Table Data Contributor
        "2b629674-e913-4c01-ae53-ef4638d8f975",  # Azure Event Hubs Data Sender
        "a638d3c7-ab3a-418d-83e6-5f17a39d4fde",  # Azure Event Hubs Data Receiver
        "3913510d-42f4-4e42-8a64-420c390055eb",  # Monitoring Metrics Publisher
    ):
        assert role in text, role
    res = resources(APP / "rbac.bicep")
    assert loop_source(res["appStorage"]) == "appStorageRoles"
    assert loop_source(res["appEventHubs"]) == "appEventHubsRoles"
    cosmos = resources(APP / "cosmos.bicep")
    assert "00000000-0000-0000-0000-000000000002" in (APP / "cosmos.bicep").read_text()
    assert (
        resource_body(cosmos["appDataContributor"])["properties"]["principalId"]
        == "appPrincipalId"
    )
    assert (
        resource_body(cosmos["userDataContributor"])["properties"]["principalId"]
        == "userPrincipalId"
    )


STORAGE_QUEUE_ROLES = {
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88",  # Storage Queue Data Contributor
    "19e7f393-937e-4f77-808e-94535e297925",  # Storage Queue Data Reader
    "8a0f0c08-91a1-4084-bc3d-661d67233fed",  # Storage Queue Data Message Processor
    "c6a89b2d-59bc-44d0-9896-0f6e12d7b80a",  # Storage Queue Data Message Sender
}


def test_no_storage_queue_role_is_granted():
    # No trigger or binding uses a queue (Event Hubs and timer triggers keep state in blobs).
    guid = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    for path in BICEP_FILES:
        assert not STORAGE_QUEUE_ROLES & set(re.findall(guid, path.read_text())), rel(
            path
        )
    roles = parsed(APP / "rbac.bicep")["variables"]["roles"]["value"]
    assert "storageBlobDataOwner" in roles
    assert not [name for name in roles if "queue" in name.lower()]


def bicep_code_strings(path: Path) -> list[str]:
    """String literals of a Bicep file outside decorators (descriptions) and comments."""
    found: list[str] = []
    stack = [tree_sitter_parser().parse(path.read_bytes()).root_node]
    while stack:
        node = stack.pop()
        if node.type == "decorators":
            continue
        if node.type == "string":
            found.append(node.text.decode())
        stack.extend(node.children)
    return found


# Host name suffixes differ per cloud (public, China, US Government); endpoints come from
# the resources (properties.serviceBusEndpoint, primaryEndpoints, documentEndpoint...).
CLOUD_SUFFIXES = re.compile(
    r"servicebus\.|windows\.net|azure\.com|azure\.net|azure-api\.net|chinacloudapi|usgovcloudapi"
)


@pytest.mark.parametrize("path", BICEP_FILES, ids=rel)
def test_no_endpoint_suffix_is_hard_coded(path: Path):
    hits = [s for s in bicep_code_strings(path) if CLOUD_SUFFIXES.search(s)]
    assert not hits, hits


def test_event_hubs_namespace_host_is_read_from_the_namespace():
    output = (APP / "eventhubs.bicep").read_text()
    (line,) = [
        x for x in output.splitlines() if x.startswith("output fullyQualifiedNamespace")
    ]
    assert "namespace.properties.serviceBusEndpoint" in line
    # The value the Function App and the local settings use (tests/test_infra_types.py
    # evaluates the expression on sample endpoints of three clouds).
    params = main_modules()["functionApp"]["config"]["params"]
    assert (
        render(params["eventHubsFullyQualifiedNamespace"])
        == "eventHubs.outputs.fullyQualifiedNamespace"
    )


FLEX_DOCS = "learn.microsoft.com/azure/azure-functions/flex-consumption-how-to"


def test_location_is_restricted_to_flex_consumption_regions():
    text = (INFRA / "main.bicep").read_text()
    location = parsed(INFRA / "main.bicep")["parameters"]["location"]
    allowed = next(
        d["argument"] for d in location["decorators"] if d["type"] == "allowed"
    )
    assert len(allowed) == len(set(allowed)) >= 10
    for region in allowed:
        # Region names as ARM and azd spell them; no canary (EUAP) or stage region.
        assert re.fullmatch(r"[a-z]+[0-9]?", region), region
        assert "euap" not in region and "stage" not in region, region
    # The list cites the documented way to check it.
    head = text[: text.index("param location string")]
    assert FLEX_DOCS in head and "az functionapp list-flexconsumption-locations" in head
    # Every region the READMEs use in an example is allowed.
    for readme in (REPO / "README.md", INFRA / "README.md"):
        examples = re.findall(
            r"(?:location[= ]|AZURE_LOCATION )([a-z]+[0-9]?)\b", readme.read_text()
        )
        assert examples, readme
        assert set(examples) <= set(allowed), (
            readme.name,
            set(examples) - set(allowed),
        )


# ---------------------------------------------------------------------------------------
# No secrets in templates, parameters or outputs

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


def infra_text_files() -> list[Path]:
    return sorted(
        p
        for p in INFRA.rglob("*")
        if p.is_file() and p.suffix in {".bicep", ".json", ".xml", ".sh", ".sql"}
    )


@pytest.mark.parametrize("path", infra_text_files(), ids=rel)
def test_no_secret_literals_in_infra(path: Path):
    text = path.read_text()
    for pattern in SECRET_PATTERNS:
        assert not pattern.search(text), f"{pattern.pattern} in {rel(path)}"


def bicep_calls(path: Path) -> list[str]:
    """The callee of every function call in a Bicep file (comments and strings excluded)."""
    found: list[str] = []
    stack = [tree_sitter_parser().parse(path.read_bytes()).root_node]
    while stack:
        node = stack.pop()
        if node.type == "call_expression":
            found.append(node.children[0].text.decode())
        stack.extend(node.children)
    return found


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
    """bicep_calls on a snippet, to show the check sees both call forms."""
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


# ---------------------------------------------------------------------------------------
# API Management


def apim_policy() -> ET.Element:
    text = (APP / "apim-policy.xml").read_text()
    tokens = set(re.findall(r"__[A-Z_]+__", text))
    replaced = set(re.findall(r"'(__[A-Z_]+__)'", (APP / "apim.bicep").read_text()))
    assert tokens == replaced, f"tokens not replaced by apim.bicep: {tokens - replaced}"
    for token, value in POLICY_SAMPLE.items():
        text = text.replace(token, value)
    return ET.fromstring(text)


# What apim.bicep puts in place of each placeholder, for a sample tenant.
TENANT = "72f988bf-0000-4000-8000-000000000001"
CLIENT_ID = "11111111-2222-3333-4444-555555555555"
POLICY_SAMPLE = {
    "__ALLOWED_ORIGINS__": "<origin>*</origin>",
    "__RATE_LIMIT_CALLS__": "300",
    "__RATE_LIMIT_PERIOD__": "60",
    "__BACKEND_ID__": "orders-functions",
    "__AUTH_OPENID_CONFIG_URL__": (
        f"https://login.microsoftonline.com/{TENANT}/v2.0/.well-known/openid-configuration"
    ),
    "__AUTH_ISSUER__": f"https://login.microsoftonline.com/{TENANT}/v2.0",
    "__AUTH_APP_ID_URI__": f"api://{CLIENT_ID}",
    "__AUTH_CLIENT_ID__": CLIENT_ID,
    "__AUTH_TENANT_ID__": TENANT,
}


def test_apim_policy_sets_cors_and_correlation_id():
    root = apim_policy()
    inbound = root.find("inbound")
    assert inbound is not None and inbound.find("cors") is not None
    for section in ("inbound", "outbound", "on-error"):
        headers = root.findall(f"{section}/set-header[@name='X-Correlation-Id']")
        assert headers, f"{section} does not set X-Correlation-Id"
    variable = inbound.find("set-variable[@name='correlationId']")
    assert variable is not None
    assert "X-Correlation-Id" in variable.get(
        "value"
    ) and "context.RequestId" in variable.get("value")
    exposed = [h.text for h in inbound.findall("cors/expose-headers/header")]
    assert "X-Correlation-Id" in exposed and "ETag" in exposed
    assert "WWW-Authenticate" in exposed
    # Browsers may send the bearer token; no subscription key header any more.
    allowed = [h.text for h in inbound.findall("cors/allowed-headers/header")]
    assert "Authorization" in allowed
    assert "Ocp-Apim-Subscription-Key" not in allowed


def token_branches() -> tuple[ET.Element, ET.Element, ET.Element]:
    """(choose, when: the anonymous operations, otherwise: everything else) of inbound."""
    inbound = apim_policy().find("inbound")
    (choose,) = inbound.findall("choose")
    (when,) = choose.findall("when")
    otherwise = choose.find("otherwise")
    assert otherwise is not None
    return choose, when, otherwise


def test_the_token_is_validated_after_cors_on_every_other_operation():
    inbound = apim_policy().find("inbound")
    tags = [child.tag for child in inbound]
    _, _, otherwise = token_branches()
    # After CORS (preflights are answered first) and the correlation id (a 401 carries it),
    # before the backend is chosen.
    assert tags.index("cors") < tags.index("set-variable") < tags.index("choose")
    assert tags.index("choose") < tags.index("set-backend-service")
    assert [child.tag for child in otherwise] == ["validate-jwt", "rate-limit-by-key"]
    assert len(apim_policy().findall(".//validate-jwt")) == 1
    jwt = otherwise.find("validate-jwt")
    assert jwt.get("header-name") == "Authorization"
    assert jwt.get("require-scheme") == "Bearer"
    assert jwt.get("failed-validation-httpcode") == "401"
    assert jwt.get("require-expiration-time") == "true"
    assert jwt.get("require-signed-tokens") == "true"
    assert jwt.get("output-token-variable-name") == "jwt"
    # Signing keys and issuer from the tenant's v2.0 OpenID configuration; the audiences the
    # app accepts too (AUTH_AUDIENCE), and this tenant only.
    (config_url,) = [e.get("url") for e in jwt.findall("openid-config")]
    assert config_url == POLICY_SAMPLE["__AUTH_OPENID_CONFIG_URL__"]
    assert [e.text for e in jwt.findall("issuers/issuer")] == [
        POLICY_SAMPLE["__AUTH_ISSUER__"]
    ]
    assert [e.text for e in jwt.findall("audiences/audience")] == [
        f"api://{CLIENT_ID}",
        CLIENT_ID,
    ]
    (claim,) = jwt.findall("required-claims/claim")
    assert claim.get("name") == "tid"
    assert [v.text for v in claim.findall("value")] == [TENANT]
    # The documented element order of validate-jwt.
    order = ["openid-config", "audiences", "issuers", "required-claims"]
    assert [child.tag for child in jwt] == order


def anonymous_operations() -> set[tuple[str, str]]:
    """(method, path) the policy lets through without a token, read from its condition."""
    _, when, _ = token_branches()
    condition = when.get("condition")
    methods = set(re.findall(r'context\.Request\.Method == "(\w+)"', condition))
    paths = set(re.findall(r'context\.Operation\.UrlTemplate == "([^"]+)"', condition))
    (method,) = methods
    return {(method, path) for path in paths}


def test_only_the_anonymous_operations_skip_the_token():
    assert anonymous_operations() == {("GET", "/health"), ("GET", "/openapi.json")}
    _, when, _ = token_branches()
    # The deep health check reveals the dependencies' state: it needs a token (and the app
    # asks for Orders.Admin).
    assert '!context.Request.Url.Query.ContainsKey("deep")' in when.get("condition")
    assert [child.tag for child in when] == ["rate-limit-by-key"]
    # Where the OpenAPI document declares security, its anonymous operations are these.
    doc = json.loads((INFRA / "openapi.json").read_text())
    operations = {
        (method.upper(), path): op
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if isinstance(op, dict)
    }
    assert anonymous_operations() <= set(operations)
    if any("security" in op for op in operations.values()):
        declared = {key for key, op in operations.items() if op.get("security") == []}
        assert declared == anonymous_operations()


def test_rate_limits_are_per_caller():
    root = apim_policy()
    # rate-limit counts per subscription key, which clients no longer send.
    assert root.find(".//rate-limit") is None
    _, when, otherwise = token_branches()
    for limit in root.findall(".//rate-limit-by-key"):
        assert limit.get("calls") == "300" and limit.get("renewal-period") == "60"
    subject = otherwise.find("rate-limit-by-key").get("counter-key")
    # The validated token's subject: oid (stable per user or app in the tenant), else sub.
    assert 'context.Variables["jwt"]' in subject
    assert 'GetValueOrDefault("oid", jwt.Subject)' in subject
    address = when.find("rate-limit-by-key").get("counter-key")
    assert "context.Request.IpAddress" in address
    assert len(root.findall(".//rate-limit-by-key")) == 2


def test_a_token_refused_at_the_edge_gets_the_apps_401():
    (when,) = apim_policy().findall("on-error/choose/when")
    assert 'context.LastError.Source == "validate-jwt"' in when.get("condition")
    assert when.find("set-status").get("code") == "401"
    challenge = when.find("set-header[@name='WWW-Authenticate']/value").text
    # The app's challenge (shared/auth.py): invalid_token only when a token was sent.
    assert 'Bearer realm=\\"orders\\"' in challenge
    assert 'error=\\"invalid_token\\"' in challenge
    assert 'ContainsKey("Authorization")' in challenge
    content_type = when.find("set-header[@name='Content-Type']/value").text
    assert content_type == "application/problem+json"
    body = when.find("set-body").text
    for part in ('"title", "Unauthorized"', '"status", 401', '"detail"'):
        assert part in body
    assert "https://errors.orders.example/unauthorized" in body
    errors = REPO / "shared" / "errors.py"
    if errors.exists():
        assert '"unauthorized"' in errors.read_text()


def test_the_tier_has_every_policy_the_api_uses():
    # rate-limit-by-key is not available in the Consumption tier (its policy reference lists
    # Developer, Basic, Basic v2, Standard, Standard v2, Premium); validate-jwt is in all.
    for path, name in ((APP / "apim.bicep", "sku"), (INFRA / "main.bicep", "apimSku")):
        param = parsed(path)["parameters"][name]
        allowed = next(
            d["argument"] for d in param["decorators"] if d["type"] == "allowed"
        )
        assert "Consumption" not in allowed, rel(path)
        assert param["default"] == "BasicV2", rel(path)
    params = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert params["apimSku"]["value"] == "${APIM_SKU=BasicV2}"
    apim = resource_body(resources(APP / "apim.bicep")["apim"])
    assert render(apim["sku"]["capacity"]) == "skuCapacity"


def test_clients_need_a_token_not_a_subscription_key():
    res = resources(APP / "apim.bicep")
    assert resource_body(res["api"])["properties"]["subscriptionRequired"] is False
    assert not [
        symbol
        for symbol, r in res.items()
        if r["type"] == "Microsoft.ApiManagement/service/subscriptions"
    ]
    assert "AZURE_APIM_SUBSCRIPTION_NAME" not in parsed(INFRA / "main.bicep")["outputs"]


def test_the_policy_gets_the_token_settings_the_function_app_gets():
    # One source for issuer and audiences: main.bicep derives them and passes the same values
    # to API Management (policy placeholders) and to the Function App (AUTH_* settings).
    variables = parsed(APP / "apim.bicep")["variables"]
    text = render(variables["policyXml"]["value"])
    for token, param in (
        ("__AUTH_OPENID_CONFIG_URL__", "authOpenIdConfigUrl"),
        ("__AUTH_ISSUER__", "authIssuer"),
        ("__AUTH_APP_ID_URI__", "authApiAppIdUri"),
        ("__AUTH_CLIENT_ID__", "authApiClientId"),
    ):
        assert f"{token}, {param})" in text, token
    assert "__AUTH_TENANT_ID__, tenant().tenantId)" in text.replace(
        "property_accessor(tenant(), tenantId)", "tenant().tenantId"
    )
    apim_params = main_modules()["apim"]["config"]["params"]
    function_params = main_modules()["functionApp"]["config"]["params"]
    for name in ("authIssuer", "authApiClientId", "authApiAppIdUri"):
        assert apim_params[name] == function_params[name] == name
    assert apim_params["authOpenIdConfigUrl"] == "authOpenIdConfigUrl"
    assert function_params["authJwksUri"] == "authJwksUri"


def test_cors_is_the_first_inbound_policy():
    # API Management's cors reference: placed after other policies (even <base />, which
    # brings in the outer scopes' policies), preflights meet those first.
    root = apim_policy()
    inbound = root.find("inbound")
    assert inbound[0].tag == "cors", [child.tag for child in inbound]
    assert root.findall(".//cors") == [inbound[0]]


def test_api_import_keeps_required_query_parameters_as_query_parameters():
    # The default ('template') turns a required query parameter into a path template
    # segment: a call without it would get API Management's 404, not the app's 400.
    api = resource_body(resources(APP / "apim.bicep")["api"])["properties"]
    assert api["translateRequiredQueryParameters"] == "query"


def test_api_management_sends_no_credential_to_the_function_app():
    # The functions are anonymous at the Functions level and the app validates the caller's
    # Entra token itself: no host key is read (listKeys), stored (named value) or sent.
    res = resources(APP / "apim.bicep")
    backend = resource_body(res["backend"])
    assert backend["name"] == "backendId"
    assert "credentials" not in backend["properties"]
    backend_id = parsed(APP / "apim.bicep")["variables"]["backendId"]["value"]
    assert (
        apim_policy().find("inbound/set-backend-service").get("backend-id")
        == backend_id
    )
    assert not (INFRA / "scripts" / "postdeploy.sh").exists()
    for path in infra_text_files():
        if path.name == "openapi.json":
            continue  # the app's contract, generated from the code (make openapi)
        text = path.read_text().lower()
        assert "functions-key" not in text and "host-key" not in text, rel(path)
    assert (
        "apimBackendCredentialExists" not in parsed(INFRA / "main.bicep")["parameters"]
    )
    params = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert not [name for name in params if "Credential" in name]
    api = resource_body(res["api"])["properties"]
    assert api["format"] == "openapi+json"
    assert render(api["value"]) == "load_text_content(../openapi.json)"


def test_openapi_document_can_be_imported():
    path = INFRA / "openapi.json"
    text = path.read_text()
    assert len(text) < LOAD_TEXT_CONTENT_MAX_CHARS, "too large for loadTextContent()"
    doc = json.loads(text)
    assert str(doc["openapi"]).startswith("3.")
    assert doc["paths"], "no paths"
    # The API's URL suffix (apiPath 'api') and the backend URL (…/api) supply the prefix.
    assert not [p for p in doc["paths"] if p == "/api" or p.startswith("/api/")]


def test_openapi_avoids_what_api_management_cannot_import():
    # Known APIM import gaps with OpenAPI 3.1 (MicrosoftDocs/azure-docs issues 105288 and
    # 119506): numeric exclusiveMinimum/exclusiveMaximum and info.summary fail the import.
    doc = json.loads((INFRA / "openapi.json").read_text())
    assert "summary" not in doc.get("info", {})
    numeric = []

    def visit(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(
                    value, bool
                ):
                    numeric.append(f"{where}/{key}={value}")
                visit(value, f"{where}/{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                visit(value, f"{where}/{index}")

    visit(doc, "#")
    # e.g. money "> 0" with at most 2 decimals is exactly "minimum: 0.01".
    assert not numeric, f"numeric exclusive bounds (use minimum/maximum): {numeric}"


# ---------------------------------------------------------------------------------------
# azd, Docker path, emulator config, postprovision


def test_azure_yaml_declares_the_function_service_and_hooks():
    doc = yaml.safe_load((REPO / "azure.yaml").read_text())
    assert doc["services"]["api"] == {
        "project": ".",
        "language": "python",
        "host": "function",
    }
    assert doc["infra"]["path"] == "infra"
    # No postdeploy hook: nothing hands API Management a key after the code is published.
    assert set(doc["hooks"]) == {"preprovision", "postprovision"}
    for name in doc["hooks"]:
        for shell in ("posix", "windows"):
            hook = doc["hooks"][name][shell]
            assert hook["run"] == f"bash ./infra/scripts/{name}.sh", (name, shell)
            assert hook["continueOnError"] is False
        assert (REPO / "infra" / "scripts" / f"{name}.sh").exists()


def emulator_config_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "generate_config", REPO / "docker" / "eventhubs" / "generate_config.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_event_hubs_emulator_config_matches_topology():
    path = REPO / "docker" / "eventhubs" / "Config.json"
    generator = emulator_config_module()
    assert path.read_text() == generator.render(topology()), (
        "docker/eventhubs/Config.json is stale: python docker/eventhubs/generate_config.py"
    )
    namespaces = json.loads(path.read_text())["UserConfig"]["NamespaceConfig"]
    assert [n["Name"] for n in namespaces] == ["emulatorNs1"]
    (entity,) = namespaces[0]["Entities"]
    hub = topology()["eventHub"]
    assert entity["Name"] == hub["name"]
    assert entity["PartitionCount"] == str(hub["partitionCount"])
    groups = [g["Name"] for g in entity["ConsumerGroups"]]
    assert groups == hub["consumerGroups"]
    assert len(groups) <= 20 and "$default" not in {g.lower() for g in groups}


def test_docker_compose_runs_the_official_emulators():
    doc = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = doc["services"]
    images = {name: s["image"] for name, s in services.items()}
    assert images["azurite"].startswith("mcr.microsoft.com/azure-storage/azurite")
    assert images["sqlserver"] == "mcr.microsoft.com/mssql/server:2022-latest"
    assert images["cosmosdb"].startswith(
        "mcr.microsoft.com/cosmosdb/linux/azure-cosmos-emulator"
    )
    eventhubs = services["eventhubs"]
    assert eventhubs["image"].startswith(
        "mcr.microsoft.com/azure-messaging/eventhubs-emulator"
    )
    assert eventhubs["environment"]["BLOB_SERVER"] == "azurite"
    assert eventhubs["environment"]["METADATA_SERVER"] == "azurite"
    mount = next(v for v in eventhubs["volumes"] if "Config.json" in v)
    source, target = mount.split(":")[:2]
    assert (REPO / source).resolve() == (
        REPO / "docker" / "eventhubs" / "Config.json"
    ).resolve()
    assert target == "/Eventhubs_Emulator/ConfigFiles/Config.json"
    assert "azurite" in eventhubs["depends_on"]


@pytest.fixture
def stub_tools(tmp_path: Path) -> Path:
    """Fake sqlcmd and python that record how the postprovision script calls them."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sqlcmd").write_text(
        "#!/usr/bin/env bash\n"
        'if [[ "$1" == "--help" ]]; then echo "  --authentication-method"; exit 0; fi\n'
        f'printf "%s\\n" "$@" > "{tmp_path}/sqlcmd.args"\n'
    )
    (bin_dir / "python").write_text(
        "#!/usr/bin/env bash\n"
        f'printf "%s\\n" "$@" > "{tmp_path}/python.args"\n'
        f'env > "{tmp_path}/python.env"\n'
    )
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    return bin_dir


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_postprovision_creates_the_sql_user_then_migrates(stub_tools: Path):
    env = {
        "PATH": f"{stub_tools}:/usr/bin:/bin",
        "HOME": str(stub_tools.parent),
        "SQL_SERVER": "sql-test.database.windows.net",
        "SQL_DATABASE": "orders",
        "AZURE_FUNCTION_IDENTITY_NAME": "id-api-test",
        "SQLCMD": str(stub_tools / "sqlcmd"),
        "PYTHON": str(stub_tools / "python"),
        "SQL_OPEN_FIREWALL": "false",
        "SQL_CONNECTION_STRING": "Server=localhost;Uid=sa",  # must not reach the migration
    }
    script = INFRA / "scripts" / "postprovision.sh"
    result = subprocess.run(
        ["bash", str(script)],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    work = stub_tools.parent
    sqlcmd_args = (work / "sqlcmd.args").read_text().splitlines()
    assert sqlcmd_args[sqlcmd_args.index("-S") + 1] == "sql-test.database.windows.net"
    assert sqlcmd_args[sqlcmd_args.index("-d") + 1] == "orders"
    assert (
        sqlcmd_args[sqlcmd_args.index("--authentication-method") + 1]
        == "ActiveDirectoryDefault"
    )
    assert sqlcmd_args[sqlcmd_args.index("-v") + 1] == "APP_IDENTITY_NAME=id-api-test"
    script_file = Path(sqlcmd_args[sqlcmd_args.index("-i") + 1])
    assert script_file.exists()
    assert (work / "python.args").read_text().split() == ["-m", "shared.sql.migrate"]
    migrate_env = (work / "python.env").read_text()
    assert "SQL_SERVER=sql-test.database.windows.net" in migrate_env
    assert "SQL_CONNECTION_STRING=" not in migrate_env


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_postprovision_refuses_without_its_variables(tmp_path: Path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    result = subprocess.run(
        ["bash", str(INFRA / "scripts" / "postprovision.sh")],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "SQL_SERVER" in result.stderr


def test_sql_grant_script_is_idempotent():
    sql = (INFRA / "scripts" / "sql" / "grant-app-identity.sql").read_text()
    assert (
        "IF NOT EXISTS (SELECT 1 FROM sys.database_principals WHERE name = N'$(APP_IDENTITY_NAME)')"
        in sql
    )
    assert "CREATE USER [$(APP_IDENTITY_NAME)] FROM EXTERNAL PROVIDER" in sql
    for role in ("db_datareader", "db_datawriter"):
        assert f"IF IS_ROLEMEMBER(N'{role}', N'$(APP_IDENTITY_NAME)') = 0" in sql
        assert f"ALTER ROLE {role} ADD MEMBER [$(APP_IDENTITY_NAME)]" in sql
    assert "GRANT EXECUTE TO [$(APP_IDENTITY_NAME)]" in sql


# ---------------------------------------------------------------------------------------
# checkov (in its own venv, .venv-checkov; INFRA_SKIP_CHECKOV=1 opts out explicitly)


@pytest.fixture(scope="module")
def checkov() -> Path:
    if os.environ.get("INFRA_SKIP_CHECKOV") == "1":
        pytest.skip("INFRA_SKIP_CHECKOV=1")
    result = subprocess.run(
        ["bash", str(REPO / "devtools" / "ensure_checkov.sh")],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, (
        f"could not install checkov:\n{result.stderr[-3000:]}"
    )
    return Path(result.stdout.strip().splitlines()[-1])


def run_checkov(checkov: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # --skip-download: no calls to the vendor's API (offline, deterministic).
    return subprocess.run(
        [str(checkov), "--framework", "bicep", "--skip-download", *args],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def checkov_report(checkov: Path) -> dict[str, Any]:
    result = run_checkov(checkov, "-d", "infra", "-o", "json")
    assert result.returncode in (0, 1), result.stderr[-3000:]
    report = json.loads(result.stdout)
    if isinstance(report, list):
        (report,) = [r for r in report if r.get("check_type") == "bicep"]
    assert "results" in report, f"checkov checked nothing: {report}"
    return report


@pytest.fixture(scope="module")
def checkov_types(checkov: Path) -> set[str]:
    """Resource types checkov has Bicep checks for (its --list table)."""
    result = run_checkov(checkov, "--list")
    assert result.returncode == 0, result.stderr[-3000:]
    types = set()
    for line in result.stdout.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) > 5 and cells[3] == "resource":
            types.add(cells[4].lower())
    assert "microsoft.storage/storageaccounts" in types
    return types


def test_checkov_parsed_every_file(checkov_report: dict[str, Any]):
    assert checkov_report["results"]["parsing_errors"] == []
    assert checkov_report["summary"]["parsing_errors"] == 0


def test_checkov_checked_every_checkable_resource(
    checkov_report: dict[str, Any], checkov_types: set[str]
):
    results = checkov_report["results"]
    seen = {
        (c["file_path"].lstrip("/"), c["resource"])
        for c in results["passed_checks"] + results["failed_checks"]
    }
    # Declared resources come from tree-sitter, independent of checkov's own parser, so a
    # file or resource checkov drops (it exits 0 on parse failures) shows up here.
    expected = set()
    for path in BICEP_FILES:
        for symbol, type_name, existing in declared_resources(path):
            if not existing and type_name.lower() in checkov_types:
                expected.add((rel(path), f"{type_name}.{symbol}"))
    assert expected, "no checkable resource found"
    assert expected <= seen, f"checkov silently skipped: {sorted(expected - seen)}"


def test_checkov_failures_are_exactly_the_documented_skips(
    checkov_report: dict[str, Any],
):
    skips = json.loads(SKIPS_FILE.read_text())["skips"]
    for skip in skips:
        assert len(skip.get("reason", "")) > 20, f"skip without a real reason: {skip}"
    allowed = {(s["check"], s["resource"], s["file"]) for s in skips}
    failed = {
        (c["check_id"], c["resource"], c["file_path"].lstrip("/"))
        for c in checkov_report["results"]["failed_checks"]
    }
    assert not failed - allowed, (
        "new checkov failures (fix, or add to tests/checkov_skips.json with a reason):\n"
        + ("\n".join(sorted(map(str, failed - allowed))))
    )
    assert not allowed - failed, (
        "stale entries in tests/checkov_skips.json:\n"
        + "\n".join(sorted(map(str, allowed - failed)))
    )
