"""Offline checks of infra/: identity everywhere (local auth off, roles granted to the app's
identity), endpoints read from the resources, regions where Flex Consumption runs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.infra_support import (
    APP,
    BICEP_FILES,
    INFRA,
    REPO,
    loop_source,
    main_modules,
    parsed,
    rel,
    render,
    resource_body,
    resources,
    tree_sitter_parser,
)


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
