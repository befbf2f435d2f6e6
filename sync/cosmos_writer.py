"""Carrying out projection writes against Cosmos DB, version-guarded, without read-before-write.

An `Upsert` patches the document with a filter predicate on its guard field
(412: already at this version or newer, nothing to do) and creates it when it
does not exist (404 -> create; 409 on a concurrent create -> patch again). A
write that stands for a first version (`Upsert.is_first`) tries the create first:
one request on the common path. A snapshot the batch itself writes counts as
stored for the documents it creates, so the batch's fan-out need not patch them,
and a first version's fan-out looks for nothing (no document holds an older one).

`Counted` contributions of one logical partition are applied together: one
transactional batch replaces what changed and the aggregate, each with its etag
as precondition, or creates what is new (a concurrent writer makes the batch
fail whole; it is then read and planned again). What the batch starts from is
the partition as this process last wrote it (`sync.known_documents`) when that
covers every write, else one query reads the contributions and the aggregate.

`execute_all` runs the writes of a batch concurrently (bounded): one task per
document, or per logical partition for contributions, then the fan-outs.
"""

from __future__ import annotations

import contextvars
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from azure.cosmos import ContainerProxy
from azure.cosmos.exceptions import (
    CosmosAccessConditionFailedError,
    CosmosBatchOperationError,
    CosmosResourceExistsError,
    CosmosResourceNotFoundError,
)

from shared.cosmos import container_specs
from shared.encoding import to_jsonable
from shared.read_model import AGGREGATE_ID
from sync.known_documents import KnownDocuments, known_documents
from sync.writes import (
    Counted,
    FanOut,
    Upsert,
    Write,
    aggregate_after,
    merge_snapshot,
    pending_changes,
)

MAX_BATCH_OPERATIONS = 100  # a Cosmos DB limit per transactional batch
# Requests of one process in flight at once (per pool). A request costs about as much of
# the process's one GIL (the SDK's pipeline, TLS, JSON) as it waits on the network, so a
# few cover the wait; more only queue on the GIL, and each hand-over of it costs CPU.
CONCURRENT_WRITES = 4
CONTENTION_ATTEMPTS = 5
# Statuses of a transactional batch that mean "someone else wrote first": read, plan again.
RACED = frozenset({404, 409, 412})

_pool = ThreadPoolExecutor(CONCURRENT_WRITES, thread_name_prefix="cosmos-write")
_fan_out_pool = ThreadPoolExecutor(
    CONCURRENT_WRITES, thread_name_prefix="cosmos-fan-out"
)

MAX_PATCH_OPERATIONS = 10  # a Cosmos DB limit per patch request

# Writers of one logical partition in this process take turns, so the second starts from
# the first's result (its ETags, in known_documents) instead of failing its batch's
# preconditions and reading the partition again: the threads that read a projection's
# Event Hubs partitions write the same hot partitions (a popular product, a day's sales
# shard). The lock spans the batch's requests, throttling retries included: a throttled
# hot partition holds up only its own writers (and the rare one sharing its stripe).
# Striped: memory stays bounded whatever the number of partitions.
_PARTITION_LOCKS = tuple(threading.Lock() for _ in range(256))


def _partition_lock(link: str, pk: str) -> threading.Lock:
    return _PARTITION_LOCKS[hash((link, pk)) % len(_PARTITION_LOCKS)]


def pk_field(container_name: str) -> str:
    return container_specs()[container_name]["partitionKey"].lstrip("/").split("/")[0]


def immutable_fields(container_name: str) -> frozenset[str]:
    """Top-level fields a patch must never touch: Cosmos DB refuses a patch of `id` or of
    the partition-key path (they are set once, when the document is created)."""
    return frozenset({"id", pk_field(container_name)})


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

    def __init__(
        self,
        containers: Callable[[str], ContainerProxy],
        known: KnownDocuments = known_documents,
    ) -> None:
        self._containers = containers
        self._known = known
        self._lock = threading.Lock()
        self.requests = 0

    def _count(self, requests: int = 1) -> None:
        with self._lock:
            self.requests += requests

    def execute(self, write: Write) -> None:
        if isinstance(write, FanOut):
            self._fan_out(write)
        elif isinstance(write, Counted):
            self._contributions([write])
        else:
            self._upsert(write)

    def execute_all(
        self, writes: Sequence[Write]
    ) -> list[tuple[list[Write], BaseException | None]]:
        """Run collapsed writes concurrently; per group of writes, the error it met (or None).

        Contributions are grouped by logical partition (one read and one batch each);
        other writes each touch one document. Fan-outs run last, after every document
        this batch creates exists."""
        groups: dict[tuple, list[Write]] = defaultdict(list)
        fan_outs: list[Write] = []
        for write in writes:
            if isinstance(write, FanOut):
                fan_outs.append(write)
            elif isinstance(write, Counted):
                groups[(write.container, write.partition_key)].append(write)
            else:
                groups[write.key].append(write)
        snapshots = self._snapshots([w for w in writes if isinstance(w, Upsert)])
        # Each task runs in a copy of this thread's context, so its Cosmos calls stay in
        # the batch's trace (a thread pool does not carry context variables over).
        tasks = [(contextvars.copy_context(), group) for group in groups.values()]
        outcomes = list(
            _pool.map(
                lambda task: task[0].run(self._run_group, task[1], snapshots), tasks
            )
        )
        for write in fan_outs:
            outcomes.append(self._run_group([write], snapshots))
        return outcomes

    def _run_group(
        self, group: list[Write], snapshots: dict[str, dict[str, Any] | None]
    ) -> tuple[list[Write], BaseException | None]:
        try:
            first = group[0]
            if isinstance(first, Counted):
                self._contributions(group)  # type: ignore[arg-type]
            elif isinstance(first, Upsert):
                self._upsert(first, snapshots)
            else:
                self.execute(first)
            return group, None
        except Exception as exc:  # noqa: BLE001 - reported per group to the runner
            return group, exc

    def _snapshots(self, upserts: list[Upsert]) -> dict[str, dict[str, Any] | None]:
        """Stored snapshots every first version of this batch may need, in one query per
        container (instead of one read before each create)."""
        wanted: dict[str, set[str]] = defaultdict(set)
        for write in upserts:
            if write.snapshot_of and write.is_first():
                wanted[write.snapshot_of[0]].add(write.snapshot_of[1])
        found: dict[str, dict[str, Any] | None] = {}
        for name, ids in wanted.items():
            self._count()
            found |= dict.fromkeys(ids)
            for doc in self._containers(name).query_items(
                f"SELECT * FROM c WHERE ARRAY_CONTAINS(@ids, c.{pk_field(name)})",
                parameters=[{"name": "@ids", "value": sorted(ids)}],
                enable_cross_partition_query=True,
            ):
                found[doc["id"]] = doc
        _overlay_batch_snapshots(found, wanted, upserts)
        return found

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
        condition = _guard_condition(guard, version, requires_at_least)
        self._count()
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

    def _create(
        self,
        container: ContainerProxy,
        write: Upsert,
        snapshots: dict[str, dict[str, Any] | None] | None = None,
    ) -> bool:
        snapshot = None
        if write.snapshot_of:
            name, doc_id, pk = write.snapshot_of
            if snapshots is not None and doc_id in snapshots:
                snapshot = snapshots[doc_id]
            else:
                self._count()
                try:
                    snapshot = self._containers(name).read_item(
                        doc_id, partition_key=pk
                    )
                except CosmosResourceNotFoundError:
                    snapshot = None
        self._count()
        try:
            container.create_item(to_jsonable(merge_snapshot(write, snapshot)))
            return True
        except CosmosResourceExistsError:
            return False

    def _upsert(
        self,
        write: Upsert,
        snapshots: dict[str, dict[str, Any] | None] | None = None,
    ) -> None:
        container = self._containers(write.container)
        creatable = write.may_create()
        if write.is_first() and creatable and self._create(container, write, snapshots):
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
                if not creatable:
                    return  # a position with nothing recorded before it: a gap, left as one
                if self._create(container, write, snapshots):
                    return
        raise RuntimeError(
            f"could not write {write.container}/{write.id}: it keeps appearing and vanishing"
        )

    def _fan_out(self, write: FanOut) -> None:
        if write.version == 1:
            # Versions start at 1: no document can hold an older one (a customer's
            # registration reaches no order), so there is nothing to look for.
            return
        container = self._containers(write.container)
        self._count()
        # Only the documents that still hold an older version need the change.
        rows = list(
            container.query_items(
                f"SELECT c.id, c.{pk_field(write.container)} AS pk FROM c "
                f"WHERE c.{write.match_field} = @value AND c.{write.guard} < @version",
                parameters=[
                    {"name": "@value", "value": write.match_value},
                    {"name": "@version", "value": write.version},
                ],
                enable_cross_partition_query=True,
            )
        )

        def patch(row: dict[str, Any]) -> None:
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
                pass  # deleted meanwhile (a rebuild): nothing to update

        # Each order is its own document: patched concurrently (a pool of their own, so a
        # fan-out started from a write task can never wait on its own pool).
        tasks = [(contextvars.copy_context(), row) for row in rows]
        list(_fan_out_pool.map(lambda task: task[0].run(patch, task[1]), tasks))

    def _contributions(self, writes: list[Counted]) -> None:
        """Apply contributions of one logical partition with their aggregate, atomically."""
        # One batch holds at most 100 operations: the aggregate plus 99 contributions.
        step = MAX_BATCH_OPERATIONS - 1
        for start in range(0, len(writes), step):
            self._contribution_batch(writes[start : start + step])

    def _contribution_batch(self, writes: list[Counted]) -> None:
        name, pk = writes[0].container, writes[0].partition_key
        container = self._containers(name)
        link = container.container_link
        with _partition_lock(link, pk):
            # What this process last saw of the partition, when that covers every write;
            # the batch's preconditions check it (otherwise the partition is read first).
            stored = self._guess(link, pk, writes)
            for _ in range(CONTENTION_ATTEMPTS):
                if stored is None:
                    stored = self._read_partition(container, name, pk, writes)
                changes = pending_changes(stored, writes)
                if not changes:
                    return  # every contribution already at its version or newer
                if self._apply_changes(container, name, pk, stored, changes):
                    return
                stored = None  # raced elsewhere: read the partition and plan again
        raise RuntimeError(
            f"could not update the aggregate of {name}/{pk}: "
            f"{CONTENTION_ATTEMPTS} concurrent writers in a row"
        )

    def _apply_changes(
        self,
        container: ContainerProxy,
        name: str,
        pk: str,
        stored: dict[str, dict[str, Any]],
        changes: list[tuple[dict[str, Any] | None, Counted]],
    ) -> bool:
        """One transactional batch: the changed contributions and the aggregate, each
        created or replaced with its etag as precondition. False when a concurrent
        writer (a replayed batch, the catch-up, another instance) got there first."""
        documents = [new.document() for _, new in changes]
        aggregate = stored.get(AGGREGATE_ID)
        documents.append(aggregate_after(aggregate, changes, pk_field(name), pk))
        olds = [old for old, _ in changes] + [aggregate]
        link = container.container_link
        self._count()
        try:
            results = container.execute_item_batch(
                [_replace_or_create(o, d) for o, d in zip(olds, documents)],
                partition_key=pk,
            )
        except CosmosBatchOperationError as exc:
            if exc.error_index is None or exc.status_code not in RACED:
                raise
            self._known.forget(link, pk, [d["id"] for d in documents])
            return False
        self._known.remember(link, pk, _as_stored(documents, results))
        return True

    def _guess(
        self, link: str, pk: str, writes: list[Counted]
    ) -> dict[str, dict[str, Any]] | None:
        """The partition's documents as last seen here, or None when the batch needs a read.

        Only a guess the batch's preconditions check is used: the aggregate must be
        known (replaced under its etag), and each contribution known at an older
        version (replaced under its etag) or unknown and a first version (created; the
        batch fails if it exists after all). A write the copy says is already applied
        is not skipped on its word (the copy may be of a document deleted since, by a
        rebuild's clear): the partition is read instead."""
        aggregate = self._known.get(link, pk, AGGREGATE_ID)
        if aggregate is None:
            return None
        stored = {AGGREGATE_ID: aggregate}
        for write in writes:
            known = self._known.get(link, pk, write.id)
            if known is None and not write.is_first():
                return None
            if known is not None:
                if known.get(write.guard, -1) >= write.version:
                    return None
                stored[write.id] = known
        return stored

    def _read_partition(
        self, container: ContainerProxy, name: str, pk: str, writes: list[Counted]
    ) -> dict[str, dict[str, Any]]:
        """The stored contributions the writes concern, and the partition's aggregate."""
        ids = sorted({w.id for w in writes} | {AGGREGATE_ID})
        self._count()
        stored = {
            doc["id"]: doc
            for doc in container.query_items(
                f"SELECT * FROM c WHERE c.{pk_field(name)} = @pk "
                "AND ARRAY_CONTAINS(@ids, c.id)",
                parameters=[
                    {"name": "@pk", "value": pk},
                    {"name": "@ids", "value": ids},
                ],
                partition_key=pk,
            )
        }
        self._known.remember(container.container_link, pk, stored.values())
        return stored


def _guard_condition(guard: str, version: int, requires_at_least: int | None) -> str:
    """The filter predicate of a guarded patch: the guard is missing or older than
    `version` (and, when given, at least `requires_at_least`)."""
    if requires_at_least is None:
        return f"(NOT IS_DEFINED(c.{guard}) OR c.{guard} < {int(version)})"
    # A missing guard already fails the lower bound: the simpler predicate is the same.
    return f"c.{guard} >= {int(requires_at_least)} AND c.{guard} < {int(version)}"


def _as_stored(
    documents: list[dict[str, Any]], results: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The documents a successful batch wrote, as stored (the service's copy when it sends
    one back, else what was sent with the new etag)."""
    stored = []
    for document, result in zip(documents, results):
        body = result.get("resourceBody")
        if isinstance(body, dict) and body.get("_etag"):
            stored.append(body)
        elif result.get("eTag"):
            stored.append({**to_jsonable(document), "_etag": result["eTag"]})
    return stored


def _overlay_batch_snapshots(
    found: dict[str, dict[str, Any] | None],
    wanted: dict[str, set[str]],
    upserts: list[Upsert],
) -> None:
    """Snapshots this batch writes, where newer than the stored ones: they are stored
    once the batch is applied, so a document created before a snapshot's change in
    the same batch takes the change at once (the batch's fan-out then skips it)."""
    for write in upserts:
        if write.id not in wanted.get(write.container, ()) or write.guard != "version":
            continue
        stored = found.get(write.id)
        if stored is None or stored.get("version", -1) < write.version:
            found[write.id] = {
                **(stored or write.on_create),
                **write.fields,
                "id": write.id,
                "version": write.version,
            }


def _replace_or_create(
    stored: dict[str, Any] | None, document: dict[str, Any]
) -> tuple[Any, ...]:
    """A batch operation: create, or replace only if the stored etag is unchanged."""
    body = to_jsonable(document)
    if stored is None:
        return ("create", (body,))
    return ("replace", (document["id"], body), {"if_match_etag": stored["_etag"]})
