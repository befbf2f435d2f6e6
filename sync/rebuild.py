"""Rebuild projections from the outbox: `python -m sync.rebuild --projection order-detail` (or `all`).

Clears the projection's containers and its private state, then replays every
outbox event through the same projection code the triggers run. Works against
Azure too (settings from the environment; data-plane RBAC suffices: items are
deleted one by one, containers are kept). Live consumers may keep running: every
document write is version-guarded; a totals document, which a live batch may have
changed between the clear's listing and its deletes, is recomputed at the end
from the contributions beside it (`reconcile`), under its etag.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from azure.core import MatchConditions
from azure.cosmos import ContainerProxy
from azure.cosmos.exceptions import (
    CosmosAccessConditionFailedError,
    CosmosResourceExistsError,
)

from shared import outbox
from shared.cosmos import container_specs, sync_container
from shared.events import Event
from shared.read_model import AGGREGATE_ID, CONTRIBUTION
from shared.sql.db import Database, database
from sync.cosmos_writer import CONTENTION_ATTEMPTS, CosmosWriter, pk_field
from sync.projections import PROJECTIONS, containers
from sync.runner import STATE_CONTAINER, Delivery, process, utc
from sync.writes import Upsert, aggregate_of

log = logging.getLogger(__name__)

PAGE = 500


class _NoDeadLetters:
    """During a rebuild a failure stops the rebuild instead of being parked."""

    def put(
        self,
        projection: str,
        delivery: Delivery,
        error: str,
        event_id: str | None = None,
    ) -> str:
        raise RuntimeError(
            f"{projection}: event at outbox position {delivery.sequence_number} failed: {error}"
        )


def clear(projection: str) -> int:
    deleted = 0
    for name in containers(projection):
        pk_field = container_specs()[name]["partitionKey"].lstrip("/")
        target = sync_container(name)
        rows = list(
            target.query_items(
                f"SELECT c.id, c.{pk_field} AS pk FROM c",
                enable_cross_partition_query=True,
            )
        )
        for row in rows:
            target.delete_item(row["id"], partition_key=row["pk"])
            deleted += 1
    state = sync_container(STATE_CONTAINER)
    for row in list(
        state.query_items(
            # Positions (partition = projection name) and private snapshots (partition = their
            # id, prefixed with the projection name). Positions go too: they describe the old
            # documents; the rebuild records new ones once its replay is done.
            "SELECT c.id, c.projection FROM c WHERE c.projection = @p OR STARTSWITH(c.projection, @prefix)",
            parameters=[
                {"name": "@p", "value": projection},
                {"name": "@prefix", "value": projection + ":"},
            ],
            enable_cross_partition_query=True,
        )
    ):
        state.delete_item(row["id"], partition_key=row["projection"])
        deleted += 1
    return deleted


def replay(projection: str, db: Database) -> tuple[int, int]:
    """Feed the outbox through the projection; returns (events, Cosmos requests).

    Pages by position. A row whose IDENTITY was assigned before, but committed after, a
    page was read is skipped by this pass; the live consumers still apply it (it is
    published after its commit), so a rebuild with the triggers running converges.
    """
    writer, after, events = CosmosWriter(sync_container), 0, 0
    while True:
        page = outbox.read_range(db, after, PAGE)
        if not page:
            return events, writer.requests
        deliveries = [_delivery(e) for e in page]
        # Positions are recorded by live consumers only; a rebuild tracks the outbox.
        process(
            projection,
            PROJECTIONS[projection],
            deliveries,
            writer,
            _NoDeadLetters(),
            final_attempt=False,  # any failure stops the rebuild, loudly
            record_positions=False,
        )
        events += len(page)
        after = deliveries[-1].sequence_number


def _delivery(event: Event) -> Delivery:
    """An outbox event as the runner takes it, its outbox position as sequence number."""
    if event.position is None:  # read_range gives every event its row's position
        raise ValueError(f"outbox event {event.event_id} without its position")
    return Delivery(event.to_bytes(), "rebuild", event.position)


def record_positions(
    projection: str, tails: dict[str, tuple[int | None, datetime | None]]
) -> None:
    """After a replay, the projection stands at least where the event log stood when the
    rebuild began (every event published by then was in the outbox it replayed), so the
    status shows no phantom lag and the catch-up pass has a place to start from."""
    writer = CosmosWriter(sync_container)
    for partition, (sequence, enqueued) in tails.items():
        if sequence is None:
            continue
        writer.execute(
            Upsert(
                STATE_CONTAINER,
                f"{projection}:position:{partition}",
                projection,
                guard="sequenceNumber",
                version=sequence,
                fields={
                    "projection": projection,
                    "kind": "position",
                    "partition": partition,
                    "offset": None,
                    "enqueuedTime": utc(enqueued).isoformat() if enqueued else None,
                    "position": None,
                    "appliedAt": datetime.now(UTC).isoformat(),
                },
            )
        )


def reconcile(projection: str) -> int:
    """Make every totals document of the projection equal to the sum of the contributions
    beside it; returns how many were corrected. Each correction is conditioned on the
    etag read, and a partition a live batch changed meanwhile is read again."""
    corrected = 0
    for name in containers(projection):
        field = pk_field(name)
        target = sync_container(name)
        partitions = {
            row["pk"]
            for row in target.query_items(
                f"SELECT c.{field} AS pk FROM c WHERE c.kind = @contribution",
                parameters=[{"name": "@contribution", "value": CONTRIBUTION}],
                enable_cross_partition_query=True,
            )
        }
        for pk in partitions:
            corrected += _reconcile_partition(target, field, pk)
    return corrected


def _reconcile_partition(target: ContainerProxy, field: str, pk: str) -> int:
    for _ in range(CONTENTION_ATTEMPTS):
        docs = list(
            target.query_items(
                f"SELECT * FROM c WHERE c.{field} = @pk",
                parameters=[{"name": "@pk", "value": pk}],
                partition_key=pk,
            )
        )
        stored = next((d for d in docs if d["id"] == AGGREGATE_ID), None)
        expected = aggregate_of(
            [d for d in docs if d.get("kind") == CONTRIBUTION], field, pk
        )
        if stored is not None and _public(stored) == expected:
            return 0
        try:
            if stored is None:
                target.create_item(expected)
            else:
                target.replace_item(
                    AGGREGATE_ID,
                    expected,
                    etag=stored["_etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
            return 1
        except (CosmosAccessConditionFailedError, CosmosResourceExistsError):
            continue  # a live batch got there first: read the partition again
    raise RuntimeError(f"could not reconcile the totals of {target.id}/{pk}")


def _public(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if not k.startswith("_")}


def rebuild(projection: str, db: Database | None = None) -> dict[str, float]:
    from shared.publisher import publisher
    from sync.dead_letters import dead_letters

    started = time.perf_counter()
    tails = publisher().partition_tails()
    letters = dead_letters().names(projection)
    deleted = clear(projection)
    events, requests = replay(projection, db or database())
    reconciled = reconcile(projection)
    record_positions(projection, tails)
    # The dead letters there were before the replay are settled: their events were in
    # the outbox it replayed (a rebuild stops on any failure). Later ones stay.
    settled = dead_letters().delete_all(letters)
    result = {
        "deleted": deleted,
        "events": events,
        "requests": requests,
        "totalsReconciled": reconciled,
        "deadLettersSettled": settled,
        "seconds": round(time.perf_counter() - started, 2),
    }
    log.info("rebuilt %s: %s", projection, result)
    return result


def load_settings(path: str | None) -> None:
    """Settings for a command-line run: a JSON file (flat, or local.settings.json's
    `Values`) into the environment; without one, the environment as it is."""
    if path:
        settings = json.loads(Path(path).read_text())
        os.environ.update(settings.get("Values", settings))


def per_projection_cli(
    description: str, action: Callable[[str], object], argv: list[str] | None
) -> int:
    """The command line of an operation run per projection (`--projection NAME|all`,
    `--settings FILE`): rebuild and redrive."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--projection", required=True, choices=[*PROJECTIONS, "all"])
    parser.add_argument(
        "--settings",
        help="JSON file of settings (a flat object, or local.settings.json with Values); default: environment",
    )
    args = parser.parse_args(argv)
    load_settings(args.settings)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name in PROJECTIONS if args.projection == "all" else [args.projection]:
        print(name, action(name))
    return 0


def main(argv: list[str] | None = None) -> int:
    return per_projection_cli(__doc__.splitlines()[0], rebuild, argv)


if __name__ == "__main__":
    sys.exit(main())
