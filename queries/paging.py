"""Pages of an order query from Cosmos DB: each item once, newest first, no OFFSET/LIMIT.

Both kinds of page hand out the same opaque token (queries.tokens):

- One partition (a customer's orders): the SDK's own continuation, resumed with
  `query_items(...).by_page(continuation)`. It is taken from the response hook of
  this request, not from `pager.continuation_token`, which the SDK reads from the
  client's `last_response_headers` — shared by every thread of the worker process.
  A full page whose continuation leads nowhere (Cosmos may hand one out before an
  empty page) is detected by peeking at one more item, so the last page's token is null.
- All partitions (`orders`): keyset paging, `TOP pageSize+1` after the (placedAt, id)
  of the last item returned. The Python SDK cannot resume a cross-partition
  ORDER BY query from a continuation: it returns one partition's server token, which
  Azure then refuses as "Invalid Continuation Token" (Azure/azure-sdk-for-python
  issues #37230 and #41434). The local stand-in has a single partition and would
  not show it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import AzureError
from azure.cosmos.exceptions import CosmosHttpResponseError

from queries import tokens
from queries.models import order_summary
from queries.order_search import OrderQuery
from shared.availability import is_unavailable
from shared.cosmos import REQUEST_TIMEOUT_SECONDS, container

CONTINUATION_HEADER = "x-ms-continuation"


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    continuation_token: str | None

    def as_json(self) -> dict[str, Any]:
        return {"items": self.items, "continuationToken": self.continuation_token}


def _start(query: OrderQuery, token: str | None) -> tuple[str, tokens.Position | None]:
    query_fingerprint = query.fingerprint()
    return query_fingerprint, (
        tokens.decode(token, query_fingerprint) if token else None
    )


def _fetch(
    query: OrderQuery, count: int, continuation: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """One SDK page of at most `count` items from `continuation`, and the continuation after it."""
    seen: dict[str, str | None] = {}

    def capture(headers: Mapping[str, Any], _result: Any) -> None:
        seen["continuation"] = headers.get(CONTINUATION_HEADER)

    pages = (
        container(query.container)
        .query_items(
            query.sql(),
            parameters=list(query.parameters),
            partition_key=query.partition_key,
            max_item_count=count,
            timeout=REQUEST_TIMEOUT_SECONDS,
            response_hook=capture,
        )
        .by_page(continuation)
    )
    batch = list(next(pages, []))
    return batch, seen.get("continuation") or None


def single_partition_page(query: OrderQuery, page_size: int, token: str | None) -> Page:
    """A page of a query confined to one partition, resumed by the SDK's continuation."""
    query_fingerprint, position = _start(query, token)
    if position is not None and position.sdk is None:
        raise tokens.invalid_position()
    start = position.sdk if position else None
    try:
        items, continuation = _collect(query, page_size, start)
    except (CosmosHttpResponseError, AzureError, ValueError) as exc:
        # Resuming from a client's token: whatever Cosmos or the SDK makes of a forged one
        # is the client's error. A failure on a first page is ours, and an outage or
        # throttling is an outage (503), whichever page it hits.
        if start is not None and _refused(exc):
            raise tokens.invalid_position() from None
        raise
    position = tokens.Position(sdk=continuation) if continuation else None
    return _page(items, query_fingerprint, position)


def _collect(
    query: OrderQuery, page_size: int, start: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Up to `page_size` items from `start` (SDK pages may come short), and the
    continuation after them: None when no item follows."""
    items: list[dict[str, Any]] = []
    continuation = start
    while True:
        batch, continuation = _fetch(query, page_size - len(items), continuation)
        items += batch
        if continuation is None or not batch or len(items) >= page_size:
            break
    if continuation is not None and not _fetch(query, 1, continuation)[0]:
        continuation = None  # a continuation that leads to an empty page
    return items, continuation


def _refused(exc: Exception) -> bool:
    """Whether Cosmos or the SDK refused the request itself (not an outage or throttling)."""
    return not is_unavailable(exc) and (
        not isinstance(exc, CosmosHttpResponseError) or exc.status_code == 400
    )


def _page(
    rows: list[dict[str, Any]], query_fingerprint: str, next_at: tokens.Position | None
) -> Page:
    """The page of these rows, with a token for the next page when `next_at` is given."""
    next_token = tokens.encode(query_fingerprint, next_at) if next_at else None
    return Page([order_summary(row) for row in rows], next_token)


def cross_partition_page(query: OrderQuery, page_size: int, token: str | None) -> Page:
    """A page of a query over every partition, resumed after the last key returned."""
    query_fingerprint, position = _start(query, token)
    if position is not None and position.after is None:
        raise tokens.invalid_position()
    after = position.after if position else None
    parameters = [*query.parameters, {"name": "@top", "value": page_size + 1}]
    if after is not None:
        parameters += [
            {"name": "@afterPlacedAt", "value": after[0]},
            {"name": "@afterId", "value": after[1]},
        ]
    rows = list(
        container(query.container).query_items(
            query.sql(after=after is not None, top=True),
            parameters=parameters,
            enable_cross_partition_query=True,
            timeout=REQUEST_TIMEOUT_SECONDS,
            max_item_count=page_size + 1,
        )
    )
    items = rows[:page_size]
    last = items[-1] if len(rows) > page_size else None
    position = tokens.Position(after=(last["placedAt"], last["id"])) if last else None
    return _page(items, query_fingerprint, position)
