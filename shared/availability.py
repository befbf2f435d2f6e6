"""Which dependency failures mean "unavailable, try again later" rather than a bug.

A request that meets one answers 503 with `Retry-After` (`shared.http`), never a
500 or a hang: the SDKs have already retried (and every client on a request path
has timeouts), so what is left is an outage, throttling or a timeout. The same
classification tells the projections which failures to keep retrying.
"""

from __future__ import annotations

import sqlite3

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.cosmos.exceptions import CosmosClientTimeoutError

from shared.errors import ServiceUnavailable

# Status codes Azure services use for "not now": timeout, throttling, Cosmos DB's
# write-conflict retry (449), gateway/service unavailability.
TRANSIENT_STATUS = frozenset({408, 429, 449, 500, 502, 503, 504})
RETRY_AFTER_SECONDS = 5


def is_unavailable(exc: BaseException) -> bool:
    """True for an outage, a timeout or throttling of Cosmos DB, Storage, SQL or the network."""
    if isinstance(
        exc, ServiceRequestError | ServiceResponseError | CosmosClientTimeoutError
    ):
        return True  # could not connect, or no (complete) answer in time
    if isinstance(exc, ClientAuthenticationError) and exc.response is None:
        # No token from the managed identity right now (IMDS, Entra ID), as opposed to
        # a service refusing the one it was sent (a misconfiguration: 500).
        return True
    if isinstance(exc, HttpResponseError):
        return exc.status_code in TRANSIENT_STATUS
    if isinstance(exc, TimeoutError | ConnectionError):
        return True
    from azure.eventhub.exceptions import EventHubError

    if isinstance(exc, EventHubError):
        return True  # connect, timeout, lost connection: Event Hubs' own errors
    from shared.sql.db import TransientDatabaseError, is_transient_pyodbc_error

    if isinstance(exc, TransientDatabaseError):
        return True  # what the Database boundary recognised (lock timeouts included)
    if isinstance(exc, sqlite3.OperationalError):
        return "locked" in str(
            exc
        )  # the local event log's "busy" (raised untranslated)
    return isinstance(exc, Exception) and is_transient_pyodbc_error(exc)


def retry_after(exc: BaseException) -> int:
    """Seconds to suggest: the service's own hint when throttled, else a short default."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    hint_ms = headers.get("x-ms-retry-after-ms")
    try:
        return (
            max(1, -(-int(float(hint_ms)) // 1000)) if hint_ms else RETRY_AFTER_SECONDS
        )
    except ValueError:
        return RETRY_AFTER_SECONDS


def as_unavailable(exc: BaseException) -> ServiceUnavailable | None:
    """The 503 problem for an unavailable dependency, or None when `exc` is something else."""
    if not is_unavailable(exc):
        return None
    return ServiceUnavailable(
        "A dependency is unavailable or overloaded; retry after the time in Retry-After.",
        headers={"Retry-After": str(retry_after(exc))},
    )
