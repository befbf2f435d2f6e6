"""Reads of the read model: point reads, whole-result queries, and read-your-writes —
wait (bounded) for a document to reach a version.

A waiting request holds a worker thread, so waits are rationed: at most
`MAX_WAITERS` requests of a process wait at once, re-reading with a growing
back-off; beyond that a request answers at once with what the read model has
and `X-Read-Model-Stale: true` (the client may retry), so waiting readers never
starve the commands and queries that share the worker.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from azure.cosmos.exceptions import CosmosResourceNotFoundError

from shared.cosmos import REQUEST_TIMEOUT_SECONDS, container
from shared.errors import NotFound
from shared.formats import etag
from shared.http import Response

FETCH_ALL = 1000  # items per request when a query reads everything it matches
FIRST_POLL_SECONDS = 0.02
MAX_POLL_SECONDS = 0.25
MAX_WAITERS = 2
_waiters = threading.BoundedSemaphore(MAX_WAITERS)


def read_document(
    container_name: str, doc_id: str, partition_key: Any
) -> dict[str, Any] | None:
    try:
        return container(container_name).read_item(
            timeout=REQUEST_TIMEOUT_SECONDS, item=doc_id, partition_key=partition_key
        )
    except CosmosResourceNotFoundError:
        return None


def query_all(
    container_name: str, sql: str, parameters: list[dict[str, Any]]
) -> Iterable[dict[str, Any]]:
    """Every document a query matches, across partitions."""
    return container(container_name).query_items(
        sql,
        parameters=parameters,
        enable_cross_partition_query=True,
        max_item_count=FETCH_ALL,
        timeout=REQUEST_TIMEOUT_SECONDS,
    )


def not_projected(what: str, headers: dict[str, str] | None = None) -> NotFound:
    """404 for a document the read model does not hold: it may not be projected yet."""
    return NotFound(
        f"{what} does not exist (or is not projected yet).", headers=headers or {}
    )


def read_with_min_version(
    read: Callable[[], dict[str, Any] | None],
    min_version: int | None,
    wait_ms: int,
    what: str,
    shape: Callable[[dict[str, Any]], dict[str, Any]],
) -> Response:
    """Read; if behind `min_version`, re-read until it catches up or `wait_ms` runs out."""
    deadline = time.monotonic() + wait_ms / 1000
    document = read()
    if _behind(document, min_version) and wait_ms and _waiters.acquire(blocking=False):
        try:
            pause = FIRST_POLL_SECONDS
            while _behind(document, min_version) and time.monotonic() < deadline:
                time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
                pause = min(pause * 2, MAX_POLL_SECONDS)
                document = read()
        finally:
            _waiters.release()
    if document is None:
        stale = {"X-Read-Model-Stale": "true"} if min_version is not None else {}
        raise not_projected(what, stale)
    headers = {"ETag": etag(document["version"])}
    if min_version is not None and document["version"] < min_version:
        headers["X-Read-Model-Stale"] = "true"
    return Response(shape(document), headers=headers)


def _behind(document: dict[str, Any] | None, min_version: int | None) -> bool:
    return min_version is not None and (
        document is None or document["version"] < min_version
    )
