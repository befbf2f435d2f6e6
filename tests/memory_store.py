"""An in-memory document store with the semantics sync.cosmos_writer gives Cosmos DB.

For property tests of the pure projections: Upsert creates or applies fields when
the guard is older; FanOut does the same to every matching document. The real
writer is tested against the local Cosmos server separately (test_cosmos_writer).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from shared.cosmos import container_specs
from shared.read_model import AGGREGATE_ID
from sync.writes import (
    Counted,
    FanOut,
    Write,
    aggregate_after,
    merge_snapshot,
    pending_changes,
)


class MemoryStore:
    def __init__(self) -> None:
        self.docs: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.requests = 0

    def execute_all(
        self, writes: Sequence[Write]
    ) -> list[tuple[list[Write], BaseException | None]]:
        outcomes: list[tuple[list[Write], BaseException | None]] = []
        for write in writes:
            try:
                self.execute(write)
                outcomes.append(([write], None))
            except Exception as exc:  # noqa: BLE001 - reported per write, as the writer does
                outcomes.append(([write], exc))
        return outcomes

    def execute(self, write: Write) -> None:
        self.requests += 1
        if isinstance(write, Counted):
            self._contribute(write)
            return
        if isinstance(write, FanOut):
            for (container, _, _), doc in self.docs.items():
                if (
                    container == write.container
                    and doc.get(write.match_field) == write.match_value
                ):
                    self._guarded_set(doc, write.guard, write.version, write.fields)
            return
        key = (write.container, write.partition_key, write.id)
        doc = self.docs.get(key)
        if doc is None and not write.may_create():
            return
        if doc is None:
            snapshot = None
            if write.snapshot_of:
                name, doc_id, pk = write.snapshot_of
                snapshot = self.docs.get((name, pk, doc_id))
            self.docs[key] = copy.deepcopy(merge_snapshot(write, snapshot))
        elif write.requires_at_least is None or (
            doc.get(write.guard) is not None
            and doc[write.guard] >= write.requires_at_least
        ):
            self._guarded_set(doc, write.guard, write.version, write.fields)

    def _contribute(self, write: Counted) -> None:
        """A contribution and its aggregate, changed together (a transactional batch)."""
        field = container_specs()[write.container]["partitionKey"].lstrip("/")
        stored = {
            doc_id: doc
            for (container, pk, doc_id), doc in self.docs.items()
            if container == write.container and pk == write.partition_key
        }
        changes = pending_changes(stored, [write])
        if not changes:
            return
        aggregate = aggregate_after(
            stored.get(AGGREGATE_ID), changes, field, write.partition_key
        )
        for _, new in changes:
            key = (write.container, write.partition_key, new.id)
            self.docs[key] = copy.deepcopy(new.document())
        self.docs[(write.container, write.partition_key, AGGREGATE_ID)] = aggregate

    @staticmethod
    def _guarded_set(doc: dict, guard: str, version: int, fields: dict) -> None:
        if doc.get(guard) is None or doc[guard] < version:
            doc.update(copy.deepcopy(fields))
            doc[guard] = version

    def documents(self) -> dict[tuple[str, str, str], dict[str, Any]]:
        """Everything but the positions (their timestamps say when, not what)."""
        return {k: v for k, v in self.docs.items() if v.get("kind") != "position"}


class DeadLetterList:
    def __init__(self) -> None:
        self.items: list[tuple[str, Any, str]] = []

    def put(
        self, projection: str, delivery: Any, error: str, event_id: str | None = None
    ) -> str:
        self.items.append((projection, delivery, error))
        return f"{projection}/{delivery.partition}/{delivery.sequence_number}"
