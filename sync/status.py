"""Projection status for operators: position, lag and dead letters per projection.

`status` is pure (tested without I/O); `read_status` gathers its inputs: the
positions the projections recorded in Cosmos DB, the transport's partition
tails, the dead-letter counts and the outbox's newest position.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from shared.cosmos import REQUEST_TIMEOUT_SECONDS
from sync.projections import PROJECTIONS, consumer_group
from sync.runner import STATE_CONTAINER, utc
from sync.telemetry import record_lag


def partition_lag(
    applied: dict[str, Any] | None,
    last_sequence: int | None,
    last_time: datetime | None,
    now: datetime,
) -> tuple[int, float]:
    """(events behind, seconds the oldest unapplied event has waited) of one partition."""
    applied_sequence = applied["sequenceNumber"] if applied else None
    behind = (last_sequence if last_sequence is not None else -1) - (
        applied_sequence if applied_sequence is not None else -1
    )
    seconds = 0.0
    if behind > 0 and last_time is not None:
        # How long the oldest unapplied event has waited. One behind: it is the newest
        # event, exactly. More: it was enqueued after the applied one, so that bound
        # errs on the long side (after a long idle spell, by the idle time).
        since = (
            datetime.fromisoformat(applied["enqueuedTime"])
            if behind > 1 and applied and applied.get("enqueuedTime")
            else None
        )
        seconds = max(0.0, (now - utc(since or last_time)).total_seconds())
    return max(behind, 0), seconds


def _applied(positions: list[dict[str, Any]], name: str) -> dict[str, dict[str, Any]]:
    return {
        p["partition"]: p
        for p in positions
        if p.get("projection") == name and p.get("kind") == "position"
    }


def lag_seconds(
    positions: list[dict[str, Any]],
    tails: dict[str, tuple[int | None, datetime | None]],
    now: datetime,
) -> dict[tuple[str, str], float]:
    """Per (projection, partition), the lag in seconds `status` reports (its maximum)."""
    out = {}
    for name in PROJECTIONS:
        mine = _applied(positions, name)
        for partition, (last_sequence, last_time) in tails.items():
            out[name, partition] = partition_lag(
                mine.get(partition), last_sequence, last_time, now
            )[1]
    return out


def status(
    positions: list[dict[str, Any]],
    tails: dict[str, tuple[int | None, datetime | None]],
    dead_lettered: dict[str, int],
    outbox_position: int | None,
    now: datetime,
) -> list[dict[str, Any]]:
    out = []
    for name in PROJECTIONS:
        mine = _applied(positions, name)
        partitions, lag_events, lag_max = [], 0, 0.0
        for partition, (last_sequence, last_time) in sorted(tails.items()):
            applied = mine.get(partition)
            applied_sequence = applied["sequenceNumber"] if applied else None
            behind, seconds = partition_lag(applied, last_sequence, last_time, now)
            lag_events += behind
            lag_max = max(lag_max, seconds)
            partitions.append(
                {
                    "partition": partition,
                    "appliedSequenceNumber": applied_sequence,
                    "lastSequenceNumber": last_sequence,
                    "lagEvents": behind,
                    "appliedAt": applied.get("appliedAt") if applied else None,
                }
            )
        applied_positions = [
            p["position"] for p in mine.values() if p.get("position") is not None
        ]
        last_applied = max(
            (p["appliedAt"] for p in mine.values() if p.get("appliedAt")), default=None
        )
        out.append(
            {
                "name": name,
                "consumerGroup": consumer_group(name),
                "lastAppliedPosition": max(applied_positions, default=None),
                "lastAppliedAt": last_applied,
                "writeSidePosition": outbox_position,
                "lagEvents": lag_events,
                "lagSeconds": round(lag_max, 3),
                "deadLettered": dead_lettered.get(name, 0),
                "partitions": partitions,
            }
        )
    return out


def recorded_positions(
    containers: Callable[[str], Any] | None = None,
) -> list[dict[str, Any]]:
    """Every projection's recorded position per partition (one cross-partition query)."""
    if containers is None:
        from shared.cosmos import sync_container

        containers = sync_container
    return list(
        containers(STATE_CONTAINER).query_items(
            "SELECT * FROM c WHERE c.kind = 'position'",
            enable_cross_partition_query=True,
            timeout=REQUEST_TIMEOUT_SECONDS,
        )
    )


def read_status() -> list[dict[str, Any]]:
    from shared import outbox
    from shared.cosmos import container
    from shared.publisher import publisher
    from shared.sql.db import database
    from sync.dead_letters import dead_letters

    positions = recorded_positions(container)
    counts = dead_letters().counts()
    _, newest = outbox.stats(database())
    tails, now = publisher().partition_tails(), datetime.now(UTC)
    record_lag(positions, tails, now)  # the cqrs.sync.lag gauge says what this answers
    return status(positions, tails, counts, newest, now)
