"""Redrive dead letters: `python -m sync.redrive --projection order-detail` (or `all`).

Re-applies each dead-lettered event of a projection through the same projection
code (idempotent: the writes' version guards make an event that was applied
meanwhile a no-op) and removes the dead letter once it applied. An event that is
still refused stays, its error updated; a dependency that is down stops the
redrive with an error and leaves the rest for the next attempt.
Also served as `POST /api/projections/{name}/redrive`.
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime
from typing import Any

from sync.cosmos_writer import CosmosWriter
from sync.dead_letters import DeadLetterStore, body_bytes
from sync.ports import Writer
from sync.projections import PROJECTIONS
from sync.runner import Delivery, process

log = logging.getLogger(__name__)


def delivery_of(letter: dict[str, Any]) -> Delivery:
    enqueued = letter.get("enqueuedTime")
    return Delivery(
        body_bytes(letter),
        str(letter["partition"]),
        int(letter["sequenceNumber"]),
        letter.get("offset"),
        datetime.fromisoformat(enqueued) if enqueued else None,
    )


def redrive(
    projection: str,
    store: DeadLetterStore | None = None,
    writer: Writer | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """Returns how many dead letters were applied and removed, how many are still
    refused, and how many were left for another call (`limit` bounds one call's work)."""
    if store is None:
        from sync.dead_letters import dead_letters

        store = dead_letters()
    if writer is None:
        from shared.cosmos import sync_container

        writer = CosmosWriter(sync_container)
    redriven, still_failing = 0, 0
    names = store.names(projection)
    for name in names[:limit]:
        result = process(
            projection,
            PROJECTIONS[projection],
            [delivery_of(store.read(name))],
            writer,
            store,  # refused again: `put` rewrites this same blob with the new error
            final_attempt=False,  # a transient failure raises: nothing is lost, retry later
            record_positions=False,
        )
        if result.dead_lettered:
            still_failing += 1
        else:
            store.delete(name)
            redriven += 1
    summary = {
        "projection": projection,
        "redriven": redriven,
        "stillFailing": still_failing,
        "remaining": len(names[limit:]) if limit is not None else 0,
    }
    log.info("redrive: %s", summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    from sync.rebuild import per_projection_cli

    return per_projection_cli(__doc__.splitlines()[0], redrive, argv)


if __name__ == "__main__":
    sys.exit(main())
