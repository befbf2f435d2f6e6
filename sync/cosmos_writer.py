"""Version-guarded writes to Cosmos DB: a stale or repeated event changes nothing.

No read before write: a new document is created (409 if it exists), an existing
one is patched with a filter predicate on its version (412 if the document is
already at that version or newer).
"""

from __future__ import annotations

from typing import Any

from azure.cosmos import ContainerProxy
from azure.cosmos.exceptions import (
    CosmosAccessConditionFailedError,
    CosmosResourceExistsError,
    CosmosResourceNotFoundError,
)

MAX_PATCH_OPERATIONS = 10  # a Cosmos DB limit per patch request


def write_if_newer(
    container: ContainerProxy,
    document: dict[str, Any],
    partition_key: Any,
    guarded: tuple[str, ...],
    version_field: str = "version",
) -> bool:
    """Create the document, or update its `guarded` fields if its version is older. True if written."""
    version = int(document[version_field])
    operations = [
        {"op": "set", "path": f"/{name}", "value": document[name]}
        for name in (*guarded, version_field)
    ]
    if len(operations) > MAX_PATCH_OPERATIONS:
        raise ValueError(
            f"{len(operations)} patch operations; Cosmos DB allows {MAX_PATCH_OPERATIONS}"
        )
    if version == 1:
        # A first version is almost always new: create first, one request on the common path.
        try:
            container.create_item(document)
            return True
        except CosmosResourceExistsError:
            pass
    for _ in range(3):
        try:
            container.patch_item(
                item=document["id"],
                partition_key=partition_key,
                patch_operations=operations,
                filter_predicate=f"FROM c WHERE NOT IS_DEFINED(c.{version_field}) OR c.{version_field} < {version}",
            )
            return True
        except CosmosAccessConditionFailedError:
            return False  # already at this version or newer
        except CosmosResourceNotFoundError:
            try:
                container.create_item(document)
                return True
            except CosmosResourceExistsError:
                continue  # created concurrently: patch it under the guard
    raise RuntimeError(f"could not write {document['id']} after concurrent creates")
