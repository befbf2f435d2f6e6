"""What a projection asks to be written: version-guarded writes, described as data.

Projections are pure functions from events to these writes; `sync.cosmos_writer`
carries them out against Cosmos DB, and the tests carry them out against an
in-memory store with the same semantics. Every write names the field that
guards it and the version it applies, so a repeated or stale event is a no-op.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Upsert:
    """Create the document, or set `fields` on it if its `guard` is missing or older than `version`.

    `on_create` fields are written only when the document is created (for parts of
    the document that other, separately guarded writes own afterwards).
    `requires_at_least`: see the field.
    `snapshot_of`: the (container, id, partition key) of a stored snapshot whose
    fields replace the `on_create` ones when its `version` is newer than
    `on_create[snapshot_guard]` (order-detail's customer snapshot, for a rename
    processed before the order it concerns).
    """

    container: str
    id: str
    partition_key: str
    guard: str
    version: int
    fields: dict[str, Any]
    on_create: dict[str, Any] = field(default_factory=dict)
    snapshot_of: tuple[str, str, str] | None = None
    snapshot_guard: str = ""
    # Apply to an existing document only when its guard is at least this: a projection's
    # recorded position advances from where it stands, never across a gap.
    requires_at_least: int | None = None

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.container, self.partition_key, self.id, self.guard)

    def document(self) -> dict[str, Any]:
        return {
            "id": self.id,
            **self.on_create,
            **self.fields,
            self.guard: self.version,
        }


@dataclass(frozen=True)
class FanOut:
    """Apply `fields` (guarded by `guard` < `version`) to every document of `container` where
    `match_field` equals `match_value` — a customer rename reaching all of its orders."""

    container: str
    match_field: str
    match_value: str
    guard: str
    version: int
    fields: dict[str, Any]

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.container, self.match_field, self.match_value, self.guard)


Write = Upsert | FanOut


def collapse(writes: Iterable[Write]) -> list[Write]:
    """Keep, per document part, only the newest write: a batch becomes one write per document.

    Upserts come before fan-outs, so a document created in this batch is reached
    by a fan-out of the same batch.
    """
    newest: dict[tuple, Write] = {}
    for write in writes:
        current = newest.get(write.key)
        if current is None or write.version > current.version:
            newest[write.key] = write
    return sorted(newest.values(), key=lambda w: isinstance(w, FanOut))


SNAPSHOT_BOOKKEEPING = ("id", "projection", "kind", "version")


def merge_snapshot(write: Upsert, snapshot: dict[str, Any] | None) -> dict[str, Any]:
    """The document to create: `on_create` overlaid by a newer stored snapshot, if any."""
    document = write.document()
    if snapshot and snapshot["version"] > document[write.snapshot_guard]:
        for name, value in snapshot.items():
            if name not in SNAPSHOT_BOOKKEEPING and not name.startswith("_"):
                document[name] = value
        document[write.snapshot_guard] = snapshot["version"]
    return document
