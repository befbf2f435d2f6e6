"""Continuation tokens as clients see them: opaque, URL-safe, bound to the query they continue.

A token is base64url (no padding) of a small JSON object: a format version, a
fingerprint of the query it belongs to (SQL text and filter parameters, not the
page size), and where the next page starts — either the Cosmos SDK's own
continuation (single-partition queries) or the sort key of the last item
returned (keyset paging across partitions). A token reused with other filters,
or that is not one of ours, is a 400, never a 500. The fingerprint is not a
signature: a hand-made token can only ask Cosmos for a page of the same query.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any, TypeGuard

from shared.errors import FieldError, ValidationFailed

FORMAT = 1
FIELD = "continuationToken"
NOT_OURS = "is not a continuation token issued by this API"


@dataclass(frozen=True)
class Position:
    """Where the next page starts: exactly one of the two is set."""

    sdk: str | None = None  # the SDK's continuation of a single-partition query
    after: tuple[str, str] | None = None  # (placedAt, id) of the last item returned


def fingerprint(scope: str, sql: str, parameters: list[dict[str, Any]]) -> str:
    canonical = json.dumps(
        [scope, sql, parameters], sort_keys=True, separators=(",", ":"), default=str
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def encode(query_fingerprint: str, position: Position) -> str:
    body: dict[str, Any] = {"v": FORMAT, "f": query_fingerprint}
    if position.sdk is not None:
        body["s"] = position.sdk
    elif position.after is not None:
        body["a"] = list(position.after)
    else:
        raise ValueError("a position needs an SDK continuation or a last key")
    raw = json.dumps(body, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _invalid(message: str) -> ValidationFailed:
    return ValidationFailed(
        "The continuation token cannot be used.", [FieldError(FIELD, message)]
    )


def decode(token: str, query_fingerprint: str) -> Position:
    """The position a client's token points at; 400 if it is not ours or not for this query."""
    body = _body(token)
    if body.get("f") != query_fingerprint:
        raise _invalid(
            "was issued for other filters; send the same filters as the first page"
        )
    sdk, after = body.get("s"), body.get("a")
    if after is None and _is_sdk_continuation(sdk):
        return Position(sdk=sdk)
    if sdk is None and _is_last_key(after):
        return Position(after=(after[0], after[1]))
    raise _invalid(NOT_OURS)


def _body(token: str) -> dict[str, Any]:
    """The JSON object a token encodes, if it is one of this format."""
    try:
        padded = token + "=" * (-len(token) % 4)
        raw = base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True)
        body = json.loads(raw)
    except (ValueError, UnicodeError, binascii.Error, RecursionError):
        raise _invalid(NOT_OURS) from None
    if not isinstance(body, dict) or body.get("v") != FORMAT:
        raise _invalid(NOT_OURS)
    return body


def _is_sdk_continuation(value: Any) -> TypeGuard[str]:
    # The SDK's token travels back to Cosmos in a header: printable ASCII only.
    return (
        isinstance(value, str)
        and bool(value)
        and value.isascii()
        and value.isprintable()
    )


def _is_last_key(value: Any) -> TypeGuard[list[str]]:
    return (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(part, str) and part for part in value)
    )


def invalid_position() -> ValidationFailed:
    """For a token that decodes but that Cosmos refuses (tampered, or from another query)."""
    return _invalid("is no longer valid; start again from the first page")
