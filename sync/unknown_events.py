"""Events of a type no projection knows: counted and logged once per type, never poison.

A newer writer may emit types an older projection does not handle yet; they are
skipped (the position still advances), but visibly.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter

from shared.events import EventType

log = logging.getLogger(__name__)

KNOWN_EVENT_TYPES = frozenset(EventType)

_seen: Counter[str] = Counter()
_lock = threading.Lock()


def note(event_type: str) -> bool:
    """True (and counted) when no projection knows `event_type`; logged on its first sighting."""
    if event_type in KNOWN_EVENT_TYPES:
        return False
    with _lock:
        _seen[event_type] += 1
        first = _seen[event_type] == 1
    if first:
        log.warning(
            "events of type %r are known to no projection: skipped and counted",
            event_type,
        )
    return True


def counts() -> dict[str, int]:
    with _lock:
        return dict(_seen)
