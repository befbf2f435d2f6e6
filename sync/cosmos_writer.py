"""Carrying out projection writes against Cosmos DB, version-guarded, without read-before-write.

An `Upsert` patches the document with a filter predicate on its guard field
(412: already at this version or newer, nothing to do) and creates it when it
does not exist (404 -> create; 409 on a concurrent create -> patch again). A
first version tries the create first: one request on the common path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from azure.cosmos import ContainerProxy
from azure.cosmos.exceptions import (
    CosmosAccessConditionFailedError,
    CosmosResourceExistsError,
    CosmosResourceNotFoundError,
)

from shared.cosmos import container_specs
from shared.encoding import to_jsonable
from sync.writes import FanOut, Upsert, Write, merge_snapshot

MAX_PATCH_OPERATIONS = 10  # a Cosmos DB limit per patch request


def immutable_fields(container_name: str) -> frozenset[str]:
    """Top-level fields a patch must never touch: Cosmos DB refuses a patch of `id` or of
    the partition-key path (they are set once, when the document is created)."""
    pk_path = container_specs()[container_name]["partitionKey"]
    return frozenset({"id", pk_path.lstrip("/").split("/")[0]})


def patch_operations(
    container_name: str, guard: str, version: int, fields: dict[str, Any]
) -> list[dict[str, Any]]:
    """The `set` operations of a guarded patch, without `id` or the partition key."""
    skip = immutable_fields(container_name)
    operations = [
        {"op": "set", "path": f"/{k}", "value": to_jsonable(v)}
        for k, v in {**fields, guard: version}.items()
        if k not in skip
    ]
    if len(operations) > MAX_PATCH_OPERATIONS:
        raise ValueError(
            f"{len(operations)} patch operations; Cosmos DB allows {MAX_PATCH_OPERATIONS}"
        )
    return operations


class CosmosWriter:
    """Executes writes; counts the requests it makes (for the benchmark and the logs)."""

    def __init__(self, containers: Callable[[str], ContainerProxy]) -> None:
        self._containers = containers
        self.requests = 0

    def execute(self, write: Write) -> None:
        if isinstance(write, FanOut):
            self._fan_out(write)
        else:
            self._upsert(write)

    def _guarded_patch(
        self,
        name: str,
        doc_id: str,
        pk: Any,
        guard: str,
        version: int,
        fields: dict,
        requires_at_least: int | None = None,
    ) -> bool:
        operations = patch_operations(name, guard, version, fields)
        condition = f"(NOT IS_DEFINED(c.{guard}) OR c.{guard} < {int(version)})"
        if requires_at_least is not None:
            condition += f" AND c.{guard} >= {int(requires_at_least)}"
        self.requests += 1
        try:
            self._containers(name).patch_item(
                item=doc_id,
                partition_key=pk,
                patch_operations=operations,
                filter_predicate=f"FROM c WHERE {condition}",
            )
            return True
        except CosmosAccessConditionFailedError:
            return False  # already at this version or newer: a repeat or a stale event

    def _create(self, container: ContainerProxy, write: Upsert) -> bool:
        snapshot = None
        if write.snapshot_of:
            name, doc_id, pk = write.snapshot_of
            self.requests += 1
            try:
                snapshot = self._containers(name).read_item(doc_id, partition_key=pk)
            except CosmosResourceNotFoundError:
                snapshot = None
        self.requests += 1
        try:
            container.create_item(to_jsonable(merge_snapshot(write, snapshot)))
            return True
        except CosmosResourceExistsError:
            return False

    def _upsert(self, write: Upsert) -> None:
        container = self._containers(write.container)
        if write.version == 1 and self._create(container, write):
            return
        for _ in range(3):
            try:
                self._guarded_patch(
                    write.container,
                    write.id,
                    write.partition_key,
                    write.guard,
                    write.version,
                    write.fields,
                    write.requires_at_least,
                )
                return
            except CosmosResourceNotFoundError:
                if self._create(container, write):
                    return
        raise RuntimeError(
            f"could not write {write.container}/{write.id}: it keeps appearing and vanishing"
        )

    def _fan_out(self, write: FanOut) -> None:
        container = self._containers(write.container)
        pk_field = container_specs()[write.container]["partitionKey"].lstrip("/")
        self.requests += 1
        rows = list(
            container.query_items(
                f"SELECT c.id, c.{pk_field} AS pk FROM c WHERE c.{write.match_field} = @value",
                parameters=[{"name": "@value", "value": write.match_value}],
                enable_cross_partition_query=True,
            )
        )
        for row in rows:
            try:
                self._guarded_patch(
                    write.container,
                    row["id"],
                    row["pk"],
                    write.guard,
                    write.version,
                    write.fields,
                )
            except CosmosResourceNotFoundError:
                continue  # deleted meanwhile (a rebuild): nothing to update
