"""What a projection asks to be written: version-guarded writes, described as data.

Projections are pure functions from events to these writes; `sync.cosmos_writer`
carries them out against Cosmos DB, and the tests carry them out against an
in-memory store with the same semantics. Every write names the field that
guards it and the version it applies, so a repeated or stale event is a no-op.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from shared.read_model import AGGREGATE, AGGREGATE_ID, CONTRIBUTION


class _Versioned:
    """What a write guarded by a version (`Upsert`, `Counted`) knows of its document."""

    container: str
    partition_key: str
    id: str
    guard: str
    version: int
    includes_first: bool

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.container, self.partition_key, self.id, self.guard)

    def is_first(self) -> bool:
        """The document most likely does not exist yet: create it before anything else."""
        return self.version == 1 or self.includes_first


@dataclass(frozen=True)
class Upsert(_Versioned):
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
    # The batch this write stands for holds the document's first version (`collapse`).
    includes_first: bool = False

    def may_create(self) -> bool:
        """A missing document may be created, unless the write must continue from a value
        it should already hold (a position after an earlier one, which is then a gap)."""
        return self.requires_at_least is None or self.requires_at_least < 0

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


@dataclass(frozen=True)
class Counted(_Versioned):
    """A per-source contribution to an aggregate kept in the same logical partition.

    The contribution document `id` (guarded by `guard` < `version`) records what it
    adds to the partition's aggregate document (`AGGREGATE_ID`): `counts` (integers,
    summed), `maxima` (values that only grow, such as a last order time: the aggregate
    keeps the largest) and `labels` (text describing a counter, such as a product's
    name: the aggregate counts how many current contributions carry each text, so a
    replaced contribution takes its text back and the result does not depend on
    delivery order). `aggregate_fields` are set on the
    aggregate as they are (e.g. its day). Replacing a contribution and adjusting the
    aggregate by the difference happen in ONE transactional batch with etag
    preconditions, so a repeated, stale or concurrent event never counts twice.
    """

    container: str
    partition_key: str
    id: str
    guard: str
    version: int
    fields: dict[str, Any]
    counts: dict[str, int]
    maxima: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    aggregate_fields: dict[str, Any] = field(default_factory=dict)
    # The batch this write stands for holds the contribution's first version (`collapse`).
    includes_first: bool = False

    def document(self) -> dict[str, Any]:
        return {
            "id": self.id,
            **self.fields,
            self.guard: self.version,
            "kind": CONTRIBUTION,
            "counts": self.counts,
            "maxima": self.maxima,
            "labels": self.labels,
            "aggregateFields": self.aggregate_fields,
        }


def aggregate_after(
    aggregate: dict[str, Any] | None,
    changes: Sequence[tuple[dict[str, Any] | None, Counted]],
    pk_field: str,
    partition_key: str,
) -> dict[str, Any]:
    """The aggregate document once each (old contribution or None, new one) is applied."""
    stored = aggregate or {}
    counters = dict(stored.get("counters", {}))
    maxima = dict(stored.get("maxima", {}))
    labels = {k: dict(v) for k, v in stored.get("labels", {}).items()}
    for old, new in changes:
        _add_counts(counters, (old or {}).get("counts", {}), new.counts)
        _raise_maxima(maxima, new.maxima)
        _move_labels(labels, (old or {}).get("labels", {}), new.labels)
    fields = changes[-1][1].aggregate_fields if changes else {}
    return {
        **{k: v for k, v in stored.items() if not k.startswith("_")},
        **fields,
        "id": AGGREGATE_ID,
        pk_field: partition_key,
        "kind": AGGREGATE,
        "counters": counters,
        "maxima": maxima,
        "labels": labels,
    }


def _add_counts(
    counters: dict[str, int], before: dict[str, int], after: dict[str, int]
) -> None:
    """Counters move by the contribution's difference; a counter at zero is dropped."""
    for name in before.keys() | after.keys():
        counters[name] = (
            counters.get(name, 0) + after.get(name, 0) - before.get(name, 0)
        )
        if counters[name] == 0:
            del counters[name]


def _raise_maxima(maxima: dict[str, Any], values: dict[str, Any]) -> None:
    """Maxima only grow."""
    for name, value in values.items():
        if name not in maxima or value > maxima[name]:
            maxima[name] = value


def _move_labels(
    labels: dict[str, dict[str, int]], before: dict[str, str], after: dict[str, str]
) -> None:
    """The replaced contribution takes its texts back, the new one adds its own."""
    steps = [(n, t, -1) for n, t in before.items()] + [
        (n, t, 1) for n, t in after.items()
    ]
    for name, text, step in steps:
        texts = labels.setdefault(name, {})
        texts[text] = texts.get(text, 0) + step
        if not texts[text]:
            del texts[text]
        if not texts:
            del labels[name]


def aggregate_of(
    contributions: list[dict[str, Any]], pk_field: str, partition_key: str
) -> dict[str, Any]:
    """The aggregate document the stored contributions of one partition add up to."""
    replay = [
        (
            None,
            Counted(
                "",
                partition_key,
                doc["id"],
                guard="",
                version=0,
                fields={},
                counts=doc.get("counts", {}),
                maxima=doc.get("maxima", {}),
                labels=doc.get("labels", {}),
                aggregate_fields=doc.get("aggregateFields", {}),
            ),
        )
        for doc in sorted(contributions, key=lambda d: d["id"])
    ]
    return aggregate_after(None, replay, pk_field, partition_key)


def pending_changes(
    current: dict[str, dict[str, Any]], writes: Iterable[Counted]
) -> list[tuple[dict[str, Any] | None, Counted]]:
    """The writes that change something: (stored contribution or None, write), newest first
    per contribution; a write whose contribution is at its version or newer is a no-op."""
    newest: dict[str, Counted] = {}
    for write in writes:
        if write.id not in newest or write.version > newest[write.id].version:
            newest[write.id] = write
    changes = []
    for write in newest.values():
        stored = current.get(write.id)
        if stored is None or stored.get(write.guard, -1) < write.version:
            changes.append((stored, write))
    return changes


Write = Upsert | FanOut | Counted


def collapse(writes: Iterable[Write]) -> list[Write]:
    """Keep, per document part, only the newest write: a batch becomes one write per document.

    A kept write whose document's first version was among those it replaces is marked
    `includes_first` (the document is most likely new: the writer creates it first).
    Upserts and contributions come before fan-outs, so a document created in this
    batch is reached by a fan-out of the same batch.
    """
    newest: dict[tuple, Write] = {}
    firsts: set[tuple] = set()
    for write in writes:
        if write.version == 1:
            firsts.add(write.key)
        current = newest.get(write.key)
        if current is None or write.version > current.version:
            newest[write.key] = write
    kept = [
        replace(w, includes_first=True)
        if w.key in firsts and isinstance(w, Upsert | Counted) and not w.is_first()
        else w
        for w in newest.values()
    ]
    return sorted(kept, key=lambda w: isinstance(w, FanOut))


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
