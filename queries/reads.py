"""Point reads with read-your-writes: wait (bounded) for the read model to reach a version."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from azure.cosmos.exceptions import CosmosResourceNotFoundError

from shared.cosmos import container
from shared.errors import NotFound
from shared.http import Response

POLL_SECONDS = 0.05


def read_document(
    container_name: str, doc_id: str, partition_key: Any
) -> dict[str, Any] | None:
    try:
        return container(container_name).read_item(
            item=doc_id, partition_key=partition_key
        )
    except CosmosResourceNotFoundError:
        return None


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
    while min_version is not None and (
        document is None or document["version"] < min_version
    ):
        if time.monotonic() >= deadline:
            break
        time.sleep(POLL_SECONDS)
        document = read()
    if document is None:
        raise NotFound(f"{what} does not exist (or is not projected yet).")
    headers = {"ETag": f'"{document["version"]}"'}
    if min_version is not None and document["version"] < min_version:
        headers["X-Read-Model-Stale"] = "true"
    return Response(shape(document), headers=headers)
