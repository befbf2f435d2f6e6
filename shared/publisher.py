"""Publishing events to the transport: Event Hubs in Azure, the local event log without Docker.

One small interface, two implementations, picked by EVENT_TRANSPORT. A publish
either sends every event or raises; the outbox marks events sent only after
it returns, so a failure means "publish again later", never "lost".
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from shared import config, telemetry
from shared.eventlog import StoredEvent
from shared.events import Event

if TYPE_CHECKING:
    from azure.eventhub import (
        EventData,
        EventHubConsumerClient,
        EventHubProducerClient,
        PartitionContext,
    )

READ_WAIT_SECONDS = 5.0  # how long a catch-up read waits for events that are not there
# A publish runs on the command's request path after the commit; past this the relay
# publishes instead, so a slow Event Hubs never holds a 202.
SEND_TIMEOUT_SECONDS = 5.0


class EventPublisher(Protocol):
    def publish(self, events: Sequence[Event]) -> None:
        """Send all events, in order per partition key, or raise."""

    def check(self) -> None:
        """Raise if the transport is unreachable (deep health check)."""

    def partition_tails(self) -> dict[str, tuple[int | None, datetime | None]]:
        """Per partition: the last sequence number and enqueued time (projection lag)."""

    def read_partition(
        self, partition: str, after_sequence: int, max_count: int
    ) -> list[StoredEvent]:
        """Up to `max_count` events of a partition after a sequence number, in order
        (the projections' catch-up pass re-drives a gap with it)."""


class EventHubsPublisher:
    """Azure Event Hubs through one long-lived producer client per worker process."""

    def __init__(self, producer: EventHubProducerClient) -> None:
        self._producer = producer
        # The producer is not thread-safe, and sync functions run on the worker's thread pool.
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """The producer, for one caller at a time; a caller that cannot have it within the
        send timeout gives up (a command's events are then left to the relay, a status
        read answers 503) instead of queueing behind a slow hub."""
        if not self._lock.acquire(timeout=SEND_TIMEOUT_SECONDS):
            raise TimeoutError("the Event Hubs producer is busy")
        try:
            yield
        finally:
            self._lock.release()

    @classmethod
    def from_settings(cls) -> EventHubsPublisher:
        from azure.eventhub import EventHubProducerClient

        return cls(_client(EventHubProducerClient))

    def publish(self, events: Sequence[Event]) -> None:
        with self._locked():
            self._publish(events)

    def _publish(self, events: Sequence[Event]) -> None:
        from azure.eventhub import EventData

        # Events of one key go in one batch with that partition key, so the hub keeps their order.
        ordered = sorted(events, key=lambda e: (e.partition_key, e.position or 0))
        for key, group in itertools.groupby(ordered, key=lambda e: e.partition_key):
            batch = self._producer.create_batch(partition_key=key)
            for event in group:
                data = EventData(event.to_bytes())
                # A copy typed as EventData's properties (str or bytes keys).
                data.properties = dict(telemetry.message_properties(event).items())
                data.content_type = "application/json"
                try:
                    batch.add(data)
                except ValueError:  # batch full: send it and start the next one
                    self._producer.send_batch(batch, timeout=SEND_TIMEOUT_SECONDS)
                    batch = self._producer.create_batch(partition_key=key)
                    batch.add(data)
            self._producer.send_batch(batch, timeout=SEND_TIMEOUT_SECONDS)

    def check(self) -> None:
        with self._locked():
            self._producer.get_eventhub_properties()

    def partition_tails(self) -> dict[str, tuple[int | None, datetime | None]]:
        tails = {}
        with self._locked():
            partitions = {
                p: self._producer.get_partition_properties(p)
                for p in self._producer.get_partition_ids()
            }
        for partition, props in partitions.items():
            empty = props.get("is_empty")
            tails[partition] = (
                None if empty else props["last_enqueued_sequence_number"],
                None if empty else props["last_enqueued_time_utc"],
            )
        return tails

    def read_partition(
        self, partition: str, after_sequence: int, max_count: int
    ) -> list[StoredEvent]:
        from azure.eventhub import EventHubConsumerClient

        consumer = _client(
            EventHubConsumerClient,
            consumer_group=config.get("EVENTHUB_CATCH_UP_CONSUMER_GROUP"),
        )
        received: list[StoredEvent] = []
        done = threading.Event()

        def on_batch(_context: PartitionContext, batch: list[EventData]) -> None:
            received.extend(stored_event(partition, data) for data in batch)
            # An empty batch: nothing arrived within max_wait_time, the tail is reached.
            if not batch or len(received) >= max_count:
                done.set()

        reader = threading.Thread(
            target=consumer.receive_batch,
            kwargs={
                "on_event_batch": on_batch,
                "partition_id": partition,
                "starting_position": after_sequence,  # an int is a sequence number
                "starting_position_inclusive": False,
                "max_batch_size": min(max_count, 300),
                "max_wait_time": READ_WAIT_SECONDS,
            },
            daemon=True,
        )
        reader.start()
        done.wait(timeout=6 * READ_WAIT_SECONDS)
        consumer.close()  # stops receive_batch
        reader.join(timeout=READ_WAIT_SECONDS)
        return received[:max_count]


T = TypeVar("T")
_Client = TypeVar("_Client", "EventHubProducerClient", "EventHubConsumerClient")


def _client(cls: type[_Client], **kwargs: Any) -> _Client:
    """An Event Hubs producer or consumer client from the settings (identity in Azure)."""
    hub = config.require("EVENTHUB_NAME")
    if conn_str := config.get("EventHubConnection"):
        return cls.from_connection_string(conn_str, eventhub_name=hub, **kwargs)
    from shared.identity import credential

    namespace = config.require("EventHubConnection__fullyQualifiedNamespace")
    return cls(namespace, hub, credential=credential(), **kwargs)


def stored_event(partition: str, data: EventData) -> StoredEvent:
    """An Event Hubs EventData as the transport-neutral record the catch-up pass reads."""
    return StoredEvent(
        int(partition),
        _system(data.sequence_number, "sequence number"),
        _system(data.offset, "offset"),
        _text(data.partition_key),
        data.body_as_str().encode("utf-8"),
        # Received application properties have bytes keys (and often values).
        {_text(k): _text(v) for k, v in (data.properties or {}).items()},
        _system(data.enqueued_time, "enqueued time"),
    )


def _system(value: T | None, name: str) -> T:
    """A system property the hub stamps on every event it enqueues."""
    if value is None:
        raise ValueError(f"a received event without its {name}")
    return value


def _text(value: Any) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


class LocalLogPublisher:
    """The local event log (shared.eventlog), the Event Hubs stand-in of the no-Docker stack."""

    def __init__(self, path: str, partition_count: int) -> None:
        from shared.eventlog import LocalEventLog

        self.log = LocalEventLog(path, partition_count)

    def publish(self, events: Sequence[Event]) -> None:
        from shared.eventlog import OutgoingEvent

        ordered = sorted(events, key=lambda e: e.position or 0)
        self.log.append(
            [
                OutgoingEvent(
                    e.to_bytes(), e.partition_key, telemetry.message_properties(e)
                )
                for e in ordered
            ]
        )

    def check(self) -> None:
        self.log.last_sequence(0)

    def partition_tails(self) -> dict[str, tuple[int | None, datetime | None]]:
        return {p: self.log.tail(p) for p in self.log.partition_ids}

    def read_partition(
        self, partition: str, after_sequence: int, max_count: int
    ) -> list[StoredEvent]:
        return self.log.read(partition, after_sequence, max_count)


@cache
def publisher() -> EventPublisher:
    if config.get("EVENT_TRANSPORT") == "local":
        return LocalLogPublisher(
            config.require("LOCAL_EVENT_LOG_PATH"),
            config.topology()["eventHub"]["partitionCount"],
        )
    return EventHubsPublisher.from_settings()
