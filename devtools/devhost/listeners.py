"""What the trigger listeners (Event Hubs, timers) share: started together, stopped with
one event, invocations in flight given until a deadline."""

from __future__ import annotations

import logging
import threading
import time
from typing import Generic, Protocol, TypeVar

log = logging.getLogger("host")


class Listener(Protocol):
    def start(self) -> None: ...

    def join(self, deadline: float) -> list[str]:
        """Wait for the listener's threads until `deadline`; the names of those still busy."""
        ...


L = TypeVar("L", bound=Listener)


class ListenerGroup(Generic[L]):
    """The listeners of one trigger type, sharing `stop_event`."""

    # What stopping leaves undone, in the warning about an invocation still running.
    abandoned_note = "abandoned"

    def __init__(self) -> None:
        self.stop_event = threading.Event()
        self.listeners: list[L] = []

    def start(self) -> None:
        for listener in self.listeners:
            listener.start()

    def stop(self, timeout: float = 10.0) -> list[str]:
        """Stop reading; wait up to `timeout` for invocations in flight. Returns abandoned threads."""
        self.stop_event.set()
        deadline = time.monotonic() + timeout
        abandoned = [
            name for listener in self.listeners for name in listener.join(deadline)
        ]
        for name in abandoned:
            log.warning(
                "%s: invocation still running after %.0fs; %s",
                name,
                timeout,
                self.abandoned_note,
            )
        return abandoned
