"""Event Hub triggers fed from the local event log, with checkpoints in blob storage.

Semantics follow the Event Hubs extension's PartitionProcessor: one reader per
(function, partition); a batch of up to `maxEventBatchSize` events is handed to the
function (cardinality many) or to one invocation per event (cardinality one); after the
batch, succeeded or failed once the retry policy is exhausted, the last event is
checkpointed (Azure/azure-webjobs-sdk#2525); when the host is stopping, the batch in
flight is not checkpointed, so it is delivered again after a restart (at least once).

Two differences, for the development machine's sake:
- A partition's checkpoint is written at most once every `CHECKPOINT_INTERVAL` (the latest
  completed batch's, when the interval has passed, and at once when the host stops; one
  that fails is tried again an interval later), where host.json's batchCheckpointFrequency
  1 writes one per batch. Each write is a blob request through the Storage SDK on the same
  cores as the HTTP functions, where the real host writes from its own .NET process. A
  crash re-delivers the events since the last checkpoint written (a few seconds' worth,
  more while a batch is being retried), which the at-least-once projections ignore.
- Event Hubs pushes events to a receiver; the local log is a file. Rather than every
  partition's reader querying it every poll, one thread per host process (`LogWatch`)
  asks SQLite whether anything was committed since it last looked and wakes the readers
  whose partition grew.

The function argument is what the host would send the worker (eventhub_wire.py);
checkpoints live in a `CheckpointStore` (checkpoints.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from devtools.devhost.checkpoints import CheckpointStore
from devtools.devhost.eventhub_wire import FULLY_QUALIFIED_NAMESPACE, decode_trigger
from devtools.devhost.indexing import EVENT_HUB_TRIGGER, IndexedFunction
from devtools.devhost.invocation import Invoker
from devtools.devhost.listeners import ListenerGroup
from devtools.devhost.retry import RetryPolicy, run_with_retry
from devtools.devhost.settings import HostConfig
from shared.config import topology
from shared.eventlog import LocalEventLog, StoredEvent

log = logging.getLogger("host")

DEFAULT_POLL_INTERVAL = 0.05
CHECKPOINT_INTERVAL = 3.0
# An idle reader wakes at least this often on its own (a checkpoint falls due, or the
# watch is late), besides when its partition grows or the host stops.
IDLE_WAKE = 1.0


class LogWatch:
    """Wakes a partition's readers when the local log holds events past their position.

    Every `interval`, one thread compares SQLite's data_version with the last it saw and
    reads the partitions' newest sequence numbers only when it changed: an idle host costs
    one cheap query per interval instead of one per partition reader.
    """

    def __init__(
        self, event_log: LocalEventLog, stop: threading.Event, interval: float
    ) -> None:
        self.event_log = event_log
        self.stop_event = stop
        self.interval = interval
        self._changed = threading.Condition()
        self._last: dict[int, int | None] = {}
        self._thread: threading.Thread | None = None

    def wait_past(
        self, partition_id: str, position: int | None, timeout: float
    ) -> bool:
        """Wait until the partition holds an event after `position`, the host stops or
        `timeout` passes; True when there is one."""
        partition = int(partition_id)
        after = -1 if position is None else position

        def grown() -> bool:
            last = self._last.get(partition)
            return self.stop_event.is_set() or (last is not None and last > after)

        with self._changed:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="eh-log-watch", daemon=True
                )
                self._thread.start()
            self._changed.wait_for(grown, timeout)
            last = self._last.get(partition)
            return last is not None and last > after

    def _run(self) -> None:
        seen: int | None = None
        failing = False
        while True:
            try:
                version = self.event_log.data_version()
                if version != seen:
                    last = self.event_log.last_sequences()
                    seen = version
                    with self._changed:
                        self._last = last
                        self._changed.notify_all()
                if failing:
                    failing = False
                    log.info("watching the event log again")
            except Exception as exc:  # noqa: BLE001 - keep watching; readers wake each IDLE_WAKE meanwhile
                if not failing:
                    failing = True
                    log.warning(
                        "cannot watch the event log (%s); new events are picked up "
                        "within %.0f s until it can",
                        exc,
                        IDLE_WAKE,
                    )
            if self.stop_event.wait(self.interval):
                with self._changed:
                    self._changed.notify_all()
                return


class EventHubListener:
    """One Event Hub triggered function: a reader thread per partition of the log."""

    def __init__(
        self,
        function: IndexedFunction,
        *,
        event_log: LocalEventLog,
        store: CheckpointStore,
        invoker: Invoker,
        host_config: HostConfig,
        stop: threading.Event,
        retry: RetryPolicy | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        checkpoint_interval: float = CHECKPOINT_INTERVAL,
        watch: LogWatch | None = None,
    ) -> None:
        trigger = function.trigger
        self.function = function
        self.eventhub_name = str(
            trigger.get("eventHubName") or trigger.get("path") or ""
        )
        self.consumer_group = str(trigger.get("consumerGroup") or "$Default")
        self.connection = trigger.get("connection")
        self.many = str(trigger.get("cardinality") or "many").lower() != "one"
        self.data_type = trigger.get("dataType")
        self.event_log = event_log
        self.store = store
        self.invoker = invoker
        self.host_config = host_config
        self.stop_event = stop
        self.retry = function.retry or retry
        self.poll_interval = poll_interval
        self.checkpoint_interval = checkpoint_interval
        self.watch = watch or LogWatch(event_log, stop, poll_interval)
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        for partition_id in self.event_log.partition_ids:
            thread = threading.Thread(
                target=self._run_partition,
                args=(partition_id,),
                name=f"eh-{self.function.name}-{partition_id}",
                daemon=True,
            )
            self.threads.append(thread)
            thread.start()
        log.info(
            "Event Hub listener '%s': hub '%s', consumer group '%s', %d partitions, batch <= %d, "
            "cardinality %s (connection setting '%s' replaced by the local event log)",
            self.function.name,
            self.eventhub_name,
            self.consumer_group,
            len(self.threads),
            self.host_config.max_event_batch_size,
            "many" if self.many else "one",
            self.connection,
        )

    def join(self, deadline: float) -> list[str]:
        """Wait for the partition threads until `deadline`; returns the partitions still busy."""
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return [t.name for t in self.threads if t.is_alive()]

    def _start_position(self, partition_id: str) -> int | None:
        """Sequence number to read after: the checkpoint, else per initialOffsetOptions."""
        while not self.stop_event.is_set():
            try:
                for checkpoint in self.store.list_checkpoints(
                    FULLY_QUALIFIED_NAMESPACE, self.eventhub_name, self.consumer_group
                ):
                    if str(checkpoint["partition_id"]) == partition_id:
                        return int(checkpoint["sequence_number"])
                break
            except Exception as exc:  # noqa: BLE001 - storage down: the host retries the lease/checkpoint read
                log.error(
                    "'%s' partition %s: cannot read checkpoints (%s); retrying",
                    self.function.name,
                    partition_id,
                    exc,
                )
                self.stop_event.wait(2.0)
        if self.host_config.initial_offset.lower() == "fromend":
            return self.event_log.last_sequence(partition_id)
        return None

    def _run_partition(self, partition_id: str) -> None:
        position = self._start_position(partition_id)
        max_batch = max(1, self.host_config.max_event_batch_size)
        min_batch = max(1, min(self.host_config.min_event_batch_size, max_batch))
        waiting_since: float | None = None
        checkpoints = _Checkpoints(self, partition_id)
        while not self.stop_event.is_set():
            checkpoints.write_due()
            try:
                events = self.event_log.read(partition_id, position, max_batch)
            except Exception as exc:  # noqa: BLE001 - a locked or missing log file must not kill the reader
                log.error(
                    "'%s' partition %s: reading the event log failed: %s",
                    self.function.name,
                    partition_id,
                    exc,
                )
                self.stop_event.wait(1.0)
                continue
            if len(events) < min_batch and events:
                # minEventBatchSize: wait for more, but no longer than maxWaitTime.
                waiting_since = waiting_since or time.monotonic()
                if time.monotonic() - waiting_since < self.host_config.max_wait_time:
                    self.stop_event.wait(self.poll_interval)
                    continue
            if not events:
                self.watch.wait_past(
                    partition_id, position, min(IDLE_WAKE, checkpoints.due_in())
                )
                continue
            waiting_since = None
            completed = self.process_batch(partition_id, events)
            if not completed or self.stop_event.is_set():
                # Host stopping: like the extension, never checkpoint a batch cut short.
                log.info(
                    "'%s' partition %s: stopping; batch of %d (sequence %d-%d) not checkpointed",
                    self.function.name,
                    partition_id,
                    len(events),
                    events[0].sequence_number,
                    events[-1].sequence_number,
                )
                break
            checkpoints.completed(events[-1])
            position = events[-1].sequence_number
        checkpoints.write()

    def process_batch(self, partition_id: str, events: Sequence[StoredEvent]) -> bool:
        """Invoke the function for a batch; False when the host stopped before it was done."""
        batches = [events] if self.many else [[e] for e in events]
        for batch in batches:
            if self.stop_event.is_set():
                return False

            def attempt(retry_count: int, batch: Sequence[StoredEvent] = batch) -> None:
                argument = decode_trigger(
                    batch,
                    many=self.many,
                    function_name=self.function.name,
                    eventhub_name=self.eventhub_name,
                    consumer_group=self.consumer_group,
                    partition_id=partition_id,
                    data_type=self.data_type,
                )
                detail = (
                    f"partition {partition_id}, {len(batch)} event(s), sequence "
                    f"{batch[0].sequence_number}-{batch[-1].sequence_number}, "
                )
                self.invoker.execute(self.function, argument, retry_count, detail)

            outcome = run_with_retry(
                attempt,
                self.retry,
                self.stop_event,
                log,
                f"Functions.{self.function.name}",
            )
            if outcome.interrupted:
                return False
        return True

    def _checkpoint(self, partition_id: str, event: StoredEvent) -> bool:
        try:
            self.store.update_checkpoint(
                {
                    "fully_qualified_namespace": FULLY_QUALIFIED_NAMESPACE,
                    "eventhub_name": self.eventhub_name,
                    "consumer_group": self.consumer_group,
                    "partition_id": partition_id,
                    "offset": str(event.offset),
                    "sequence_number": event.sequence_number,
                }
            )
        except Exception as exc:  # noqa: BLE001 - as in the host: log it, keep processing (redelivery on restart)
            log.error(
                "'%s' partition %s: checkpoint at sequence %d failed: %s",
                self.function.name,
                partition_id,
                event.sequence_number,
                exc,
            )
            return False
        return True


class _Checkpoints:
    """A partition's latest completed batch, checkpointed at most every CHECKPOINT_INTERVAL."""

    def __init__(self, listener: EventHubListener, partition_id: str) -> None:
        self.listener = listener
        self.partition_id = partition_id
        self.pending: StoredEvent | None = None
        self.written_at = float("-inf")

    def completed(self, last: StoredEvent) -> None:
        self.pending = last
        self.write_due()

    def write_due(self) -> None:
        if self.due_in() <= 0:
            self.write()

    def due_in(self) -> float:
        """Seconds until the held checkpoint is due (infinite when none is held)."""
        if self.pending is None:
            return float("inf")
        return self.written_at + self.listener.checkpoint_interval - time.monotonic()

    def write(self) -> None:
        """Write the held checkpoint; one that fails is held for the next try (an
        interval later), not dropped."""
        if self.pending is not None:
            if self.listener._checkpoint(self.partition_id, self.pending):
                self.pending = None
            self.written_at = time.monotonic()


class EventHubRunner(ListenerGroup[EventHubListener]):
    """All Event Hub listeners of the app, started and stopped together."""

    abandoned_note = "abandoned without checkpoint"

    def __init__(
        self,
        functions: Iterable[IndexedFunction],
        *,
        event_log: LocalEventLog,
        store: CheckpointStore,
        invoker: Invoker,
        host_config: HostConfig,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
    ) -> None:
        super().__init__()
        host_retry = (
            RetryPolicy.from_mapping(host_config.retry) if host_config.retry else None
        )
        watch = LogWatch(event_log, self.stop_event, poll_interval)
        self.listeners = [
            EventHubListener(
                f,
                event_log=event_log,
                store=store,
                invoker=invoker,
                host_config=host_config,
                stop=self.stop_event,
                retry=host_retry,
                poll_interval=poll_interval,
                watch=watch,
            )
            for f in functions
            if f.trigger_type == EVENT_HUB_TRIGGER
        ]
        seen: dict[tuple[str, str], str] = {}
        for listener in self.listeners:
            key = (listener.eventhub_name.lower(), listener.consumer_group.lower())
            if key in seen:
                log.warning(
                    "Functions '%s' and '%s' share hub '%s' and consumer group '%s': they share "
                    "checkpoints, so each would see only part of the events in Azure",
                    seen[key],
                    listener.function.name,
                    *key,
                )
            seen[key] = listener.function.name


def open_event_log(
    path: str | Path, default_partition_count: int | None = None
) -> LocalEventLog:
    """The local event log; a new log gets the hub's partition count from topology.json."""
    if default_partition_count is None:
        default_partition_count = int(topology()["eventHub"]["partitionCount"])
    return LocalEventLog(path, default_partition_count)
