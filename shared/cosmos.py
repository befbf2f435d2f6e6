"""The Cosmos DB client of a worker process and the read-model containers.

Container names and partition keys come from shared/topology.json, the same
file Bicep provisions from. In Azure the client authenticates with the managed
identity (data-plane RBAC, local auth disabled); a key is used only for the
local emulators.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from azure.cosmos import ContainerProxy, CosmosClient, DatabaseProxy, PartitionKey

from shared import config


@cache
def client() -> CosmosClient:
    endpoint = config.get("COSMOS_ENDPOINT")
    if not endpoint:
        raise RuntimeError("COSMOS_ENDPOINT is not set")
    if key := config.get("COSMOS_KEY"):
        credential: Any = key
    else:
        from shared.identity import credential as entra_credential

        credential = entra_credential()
    return CosmosClient(
        endpoint,
        credential=credential,
        connection_verify=config.get_bool("COSMOS_VERIFY_TLS"),
    )


def database() -> DatabaseProxy:
    return client().get_database_client(config.get("COSMOS_DATABASE"))


@cache
def container(name: str) -> ContainerProxy:
    if name not in container_specs():
        raise KeyError(f"container {name!r} is not declared in shared/topology.json")
    return database().get_container_client(name)


def container_specs() -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in config.topology()["cosmos"]["containers"]}


def ensure_containers() -> None:
    """Create the database and containers if absent (local stacks; Bicep does it in Azure)."""
    db = client().create_database_if_not_exists(config.get("COSMOS_DATABASE"))
    for spec in container_specs().values():
        db.create_container_if_not_exists(
            id=spec["name"],
            partition_key=PartitionKey(path=spec["partitionKey"]),
            indexing_policy=spec.get("indexingPolicy"),
        )
