"""What the projection runner needs from the outside: a writer and a dead-letter store.

`sync.cosmos_writer.CosmosWriter` and `sync.dead_letters.DeadLetterStore` satisfy
these structurally (nothing inherits from them); the tests use in-memory ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from sync.writes import Write

if TYPE_CHECKING:
    from sync.runner import Delivery

Outcome = tuple[list[Write], BaseException | None]


@runtime_checkable
class Writer(Protocol):
    """Carries out projection writes; `requests` counts the Cosmos DB requests made."""

    requests: int

    def execute(self, write: Write) -> None: ...

    def execute_all(self, writes: Sequence[Write]) -> list[Outcome]:
        """Carry out collapsed writes; per group of writes, the error it met or None."""
        ...


@runtime_checkable
class DeadLetters(Protocol):
    """Keeps an event no retry can fix; returns the name it was kept under."""

    def put(
        self, projection: str, delivery: Delivery, error: str, event_id: str | None
    ) -> str: ...
