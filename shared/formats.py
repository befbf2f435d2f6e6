"""Formats of values the API accepts: one regular expression each, used both by the
validation and by the OpenAPI document, so the two state the same rule.

Patterns are written in the subset that ECMA-262 (JSON Schema), Rust's regex crate
(pydantic) and Python's `re` read the same way: no `\\s`, `\\d` or `\\w` (they are
Unicode-aware in Rust and Python but not in ECMA-262), no lookaround.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

# Unicode White_Space: exactly what pydantic's `str_strip_whitespace` strips.
WHITESPACE = "\\t\\n\\x0b\\x0c\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
# Somewhere in the string a character that is not whitespace (unanchored: a search).
NOT_BLANK = f"[^{WHITESPACE}]"
EMAIL = f"^[^@{WHITESPACE}]+@[^@{WHITESPACE}]+\\.[^@{WHITESPACE}]+$"
SKU = "^[A-Za-z0-9][A-Za-z0-9._-]*$"

UUID = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
UUID_SCHEMA = {"type": "string", "format": "uuid", "pattern": UUID}

# A calendar day as YYYY-MM-DD, years 0001-9999 (Python's date range).
DAY = (
    "^(000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})"
    "-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"
)

# If-Match: the version as the ETag carries it, in quotes (a weak W/ prefix is ignored).
IF_MATCH = '^(W/)?"[0-9]{1,9}"$'
MAX_VERSION = 999_999_999  # the 9 digits above


def etag(version: int) -> str:
    """The ETag of a resource at `version` (what If-Match sends back)."""
    return f'"{version}"'


# Idempotency-Key: 1 to 200 printable ASCII characters (an RFC 8941 string's alphabet);
# HTTP removes spaces around a header value, so the value neither starts nor ends with one.
IDEMPOTENCY_KEY = "^[!-~]([ -~]{0,198}[!-~])?$"
IDEMPOTENCY_KEY_RE = re.compile(IDEMPOTENCY_KEY)
# X-Correlation-Id values that are echoed; anything else is replaced by a new id.
CORRELATION_ID = "^[A-Za-z0-9._:/+=-]{1,128}$"

UUID_RE = re.compile(UUID)


def instant(moment: datetime) -> str:
    """A UTC instant at fixed width (a whole second keeps its .000000), so the text sorts as
    the time does: the format of every timestamp in events and the read model."""
    # isoformat, not strftime: %Y drops the leading zeros of a year before 1000.
    return (
        moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    )
