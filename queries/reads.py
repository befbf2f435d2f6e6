"""Reads of the read model: point reads, whole-result queries, and read-your-writes —
wait (bounded) for a document to reach a version.

A wait holds no thread: the route is an `async def` function, the wait an
`asyncio.sleep` on the worker's event loop between re-reads (each re-read, a blocking
SDK call, borrows a thread of the loop for its few milliseconds), with a growing
back-off. Waits are still capped, as each waiter re-reads Cosmos DB a few times a
second: beyond `MAX_WAITERS` at once in a process, a request answers at once with what
the read model has and `X-Read-Model-Stale: true` (the client may retry).
"""

from __future__ import annotations

import asyncio
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
# At most ~4 re-reads a second each once backed off: 64 waiters cost at most ~256 point
# reads a second (1 RU each) per instance.
MAX_WAITERS = 64
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


async def read_with_min_version(
    read: Callable[[], dict[str, Any] | None],
    min_version: int | None,
    wait_ms: int,
    what: str,
    shape: Callable[[dict[str, Any]], dict[str, Any]],
) -> Response:
    """Read; if behind `min_version`, re-read until it catches up or `wait_ms` runs out.

    `read` and `shape` block (SDK calls), so each attempt runs in a thread: the read, and
    the answer made from it unless it is behind and may still wait. The wait itself is
    on the event loop."""
    deadline = time.monotonic() + wait_ms / 1000

    def attempt(may_wait: bool) -> tuple[dict[str, Any] | None, Response | None]:
        document = read()
        if may_wait and _behind(document, min_version):
            return document, None
        return document, _answer(document, min_version, what, shape)

    document, response = await asyncio.to_thread(attempt, wait_ms > 0)
    if response is not None:
        return response
    if _waiters.acquire(blocking=False):
        try:
            pause = FIRST_POLL_SECONDS
            while (left := deadline - time.monotonic()) > 0:
                await asyncio.sleep(min(pause, left))
                pause = min(pause * 2, MAX_POLL_SECONDS)
                document, response = await asyncio.to_thread(attempt, True)
                if response is not None:
                    return response
        finally:
            _waiters.release()
    # The wait ran out, or too many wait already: what the read model has, marked stale.
    return await asyncio.to_thread(_answer, document, min_version, what, shape)


def _answer(
    document: dict[str, Any] | None,
    min_version: int | None,
    what: str,
    shape: Callable[[dict[str, Any]], dict[str, Any]],
) -> Response:
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
