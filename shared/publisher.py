"""Publishing events to the transport: Event Hubs in Azure, the local event log without Docker.

One small interface, two implementations, picked by EVENT_TRANSPORT. A publish
either sends every event or raises; the outbox marks events sent only after
it returns, so a failure means "publish again later", never "lost".
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Protocol

from shared import config
from shared.events import Event


class EventPublisher(Protocol):
    def publish(self, events: Sequence[Event]) -> None:
        """Send all events, in order per partition key, or raise."""

    def check(self) -> None:
        """Raise if the transport is unreachable (deep health check)."""

    def partition_tails(self) -> dict[str, tuple[int | None, datetime | None]]:
        """Per partition: the last sequence number and enqueued time (projection lag)."""


class EventHubsPublisher:
    """Azure Event Hubs through one long-lived producer client per worker process."""

    def __init__(self, producer) -> None:
        self._producer = producer
        # The producer is not thread-safe, and sync functions run on the worker's thread pool.
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls) -> EventHubsPublisher:
        from azure.eventhub import EventHubProducerClient

        hub = config.get("EVENTHUB_NAME")
        if conn_str := config.get("EventHubConnection"):
            producer = EventHubProducerClient.from_connection_string(
                conn_str, eventhub_name=hub
            )
        else:
            from shared.identity import credential

            namespace = config.get("EventHubConnection__fullyQualifiedNamespace")
            producer = EventHubProducerClient(namespace, hub, credential())
        return cls(producer)

    def publish(self, events: Sequence[Event]) -> None:
        with self._lock:
            self._publish(events)

    def _publish(self, events: Sequence[Event]) -> None:
        from azure.eventhub import EventData

        # Events of one key go in one batch with that partition key, so the hub keeps their order.
        ordered = sorted(events, key=lambda e: (e.partition_key, e.position or 0))
        for key, group in itertools.groupby(ordered, key=lambda e: e.partition_key):
            batch = self._producer.create_batch(partition_key=key)
            for event in group:
                data = EventData(event.to_bytes())
                data.properties = event.properties()
                data.content_type = "application/json"
                try:
                    batch.add(data)
                except ValueError:  # batch full: send it and start the next one
                    self._producer.send_batch(batch)
                    batch = self._producer.create_batch(partition_key=key)
                    batch.add(data)
            self._producer.send_batch(batch)

    def check(self) -> None:
        with self._lock:
            self._producer.get_eventhub_properties()

    def partition_tails(self) -> dict[str, tuple[int | None, datetime | None]]:
        tails = {}
        with self._lock:
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
                OutgoingEvent(e.to_bytes(), e.partition_key, e.properties())
                for e in ordered
            ]
        )

    def check(self) -> None:
        self.log.last_sequence(0)

    def partition_tails(self) -> dict[str, tuple[int | None, datetime | None]]:
        return {p: self.log.tail(p) for p in self.log.partition_ids}


@cache
def publisher() -> EventPublisher:
    if config.get("EVENT_TRANSPORT") == "local":
        return LocalLogPublisher(
            config.get("LOCAL_EVENT_LOG_PATH"),
            config.topology()["eventHub"]["partitionCount"],
        )
    return EventHubsPublisher.from_settings()
