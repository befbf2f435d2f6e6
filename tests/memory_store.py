"""An in-memory document store with the semantics sync.cosmos_writer gives Cosmos DB.

For property tests of the pure projections: Upsert creates or applies fields when
the guard is older; FanOut does the same to every matching document. The real
writer is tested against the local Cosmos server separately (test_cosmos_writer).
"""

from __future__ import annotations

import copy
from typing import Any

from sync.writes import FanOut, Write, merge_snapshot


class MemoryStore:
    def __init__(self) -> None:
        self.docs: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.requests = 0

    def execute(self, write: Write) -> None:
        self.requests += 1
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
