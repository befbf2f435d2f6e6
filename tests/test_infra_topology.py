"""Offline checks of infra/: names shared by code and infra come from shared/topology.json
through loops."""

from __future__ import annotations

import re

from tests.infra_support import (
    APP,
    COSMOS_INDEXING_POLICY_KEYS,
    INFRA,
    loop_item,
    loop_source,
    render,
    resource_body,
    resources,
    topology,
    topology_variable,
)


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
