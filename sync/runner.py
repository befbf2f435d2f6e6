"""Running one projection over a batch of Event Hubs events.

Decodes the batch, hands the events to the projection, and logs what it did.
Kept apart from the trigger so tests and the rebuild command drive the same code.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from shared.events import Event

log = logging.getLogger(__name__)

Projection = Callable[[list[Event]], None]


def decode(bodies: Sequence[bytes]) -> list[Event]:
    return [Event.from_bytes(body) for body in bodies]


def run(name: str, projection: Projection, bodies: Sequence[bytes]) -> None:
    events = decode(bodies)
    projection(events)
    log.info("%s applied %d event(s)", name, len(events))
