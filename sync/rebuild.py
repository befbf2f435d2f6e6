"""Rebuild projections from the outbox: `python -m sync.rebuild --projection order-detail` (or `all`).

Clears the projection's containers and its private state, then replays every
outbox event through the same projection code the triggers run. Works against
Azure too (settings from the environment; data-plane RBAC suffices: items are
deleted one by one, containers are kept). Live consumers may keep running: all
writes are version-guarded, so overlapping with them is harmless.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from shared import outbox
from shared.cosmos import container_specs, sync_container
from shared.sql.db import Database, database
from sync.cosmos_writer import CosmosWriter
from sync.projections import PROJECTIONS, containers
from sync.runner import STATE_CONTAINER, Delivery, process, utc
from sync.writes import Upsert

log = logging.getLogger(__name__)

PAGE = 500


class _NoDeadLetters:
    """During a rebuild a failure stops the rebuild instead of being parked."""

    def put(self, projection, delivery, error, event_id=None) -> str:
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
        deliveries = [Delivery(e.to_bytes(), "rebuild", e.position) for e in page]
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
        after = page[-1].position


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


def rebuild(projection: str, db: Database | None = None) -> dict[str, float]:
    from shared.publisher import publisher
    from sync.dead_letters import dead_letters

    started = time.perf_counter()
    tails = publisher().partition_tails()
    deleted = clear(projection)
    events, requests = replay(projection, db or database())
    record_positions(projection, tails)
    # Every dead-lettered event of this projection was in the outbox just replayed (a
    # rebuild stops on any failure), so those dead letters are settled.
    settled = dead_letters().clear(projection)
    result = {
        "deleted": deleted,
        "events": events,
        "requests": requests,
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projection", required=True, choices=[*PROJECTIONS, "all"])
    parser.add_argument(
        "--settings",
        help="JSON file of settings (a flat object, or local.settings.json with Values); default: environment",
    )
    args = parser.parse_args(argv)
    load_settings(args.settings)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name in PROJECTIONS if args.projection == "all" else [args.projection]:
        print(name, rebuild(name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
