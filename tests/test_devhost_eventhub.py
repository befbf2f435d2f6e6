"""Dev host Event Hub triggers: the argument the worker builds, retries, checkpoints, restarts."""

from __future__ import annotations

import _strptime  # type: ignore[import-not-found]
import inspect
import itertools
import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import azure.functions as func
import httpx
import pytest
from azure.eventhub.extensions.checkpointstoreblob import BlobCheckpointStore

from devtools.bench_common import child_processes
from devtools.devhost.checkpoints import (
    MemoryCheckpointStore,
    checkpoint_container_name,
    explicit_storage_connection_string,
)
from devtools.devhost.eventhub import CHECKPOINT_INTERVAL, IDLE_WAKE, EventHubListener
from devtools.devhost.eventhub_wire import FULLY_QUALIFIED_NAMESPACE, decode_trigger
from devtools.devhost.indexing import EVENT_HUB_TRIGGER, IndexedFunction
from devtools.devhost.invocation import Invoker
from devtools.devhost.retry import EXPONENTIAL_BACKOFF, FIXED_DELAY, RetryPolicy
from devtools.devhost.settings import HostConfig, net_datetime
from shared.eventlog import LocalEventLog, OutgoingEvent, StoredEvent
from tests.devhost_sample.harness import (
    HostProcess,
    copy_sample,
    read_records,
    wait_for,
)

ENQUEUED = datetime(2024, 5, 1, 12, 30, 45, 123400, tzinfo=UTC)


def stored(
    seq: int, key: str | None = "pk-1", body: bytes = b'{"n": 1}', **props: str
) -> StoredEvent:
    return StoredEvent(2, seq, seq * 10, key, body, dict(props), ENQUEUED)


# --- what the function receives ----------------------------------------------------------


def test_batch_argument_like_the_worker_builds_it() -> None:
    events = [stored(5, body=b"first", type="A"), stored(6, key=None, body=b"\x00\x01")]
    decoded = decode_trigger(
        events,
        many=True,
        function_name="fn",
        eventhub_name="hub",
        consumer_group="cg",
        partition_id="2",
    )
    assert isinstance(decoded, list) and all(
        isinstance(e, func.EventHubEvent) for e in decoded
    )
    first, second = decoded
    assert (first.get_body(), second.get_body()) == (b"first", b"\x00\x01")
    assert (first.partition_key, second.partition_key) == ("pk-1", None)
    assert (first.sequence_number, first.offset) == (
        5,
        50,
    )  # offset is an int with cardinality many
    # EnqueuedTime.DateTime has Kind Unspecified in the host: the library makes it naive (UTC).
    assert first.enqueued_time == ENQUEUED.replace(tzinfo=None)
    metadata = first.metadata
    assert (
        metadata == second.metadata
    )  # every event carries the whole batch's metadata, as in Azure
    assert metadata["PartitionContext"] == {
        "IsCheckpointingAfterInvocation": True,
        "FullyQualifiedNamespace": FULLY_QUALIFIED_NAMESPACE,
        "EventHubName": "hub",
        "ConsumerGroup": "cg",
        "PartitionId": "2",
    }
    assert metadata["PropertiesArray"] == [{"type": "A"}, {}]
    assert metadata["SequenceNumberArray"] == [5, 6]
    assert metadata["OffsetArray"] == ["50", "60"]
    assert metadata["PartitionKeyArray"] == [
        "pk-1"
    ]  # the host drops null strings from string arrays
    assert metadata["EnqueuedTimeUtcArray"] == ["2024-05-01T12:30:45.1234"] * 2
    system = metadata["SystemPropertiesArray"][0]
    assert system["x-opt-sequence-number"] == 5 and system["x-opt-offset"] == "50"
    assert (
        system["x-opt-partition-key"] == "pk-1"
        and system["x-opt-enqueued-time"] == "2024-05-01T12:30:45.1234Z"
    )
    assert metadata["SystemPropertiesArray"][1]["PartitionKey"] is None
    assert metadata["sys"]["MethodName"] == "fn"


def test_a_projection_decodes_batches_without_compiling_date_formats_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sync.functions  # noqa: F401 - the app imports it: it sizes strptime's cache

    events = [stored(seq) for seq in range(10)]
    batch = {
        "many": True,
        "function_name": "fn",
        "eventhub_name": "hub",
        "consumer_group": "cg",
        "partition_id": "2",
    }
    decode_trigger(events, **batch)
    compiled: list[str] = []
    original = _strptime.TimeRE.compile
    monkeypatch.setattr(
        _strptime.TimeRE,
        "compile",
        lambda self, fmt: compiled.append(fmt) or original(self, fmt),
    )
    decoded = decode_trigger(events, **batch)
    assert [e.enqueued_time for e in decoded] == [ENQUEUED.replace(tzinfo=None)] * 10
    assert compiled == []


def test_single_event_argument_and_string_data_type() -> None:
    event = decode_trigger(
        [stored(7, type="B")],
        many=False,
        function_name="fn",
        eventhub_name="hub",
        consumer_group="cg",
        partition_id="2",
    )
    assert isinstance(event, func.EventHubEvent)
    assert (event.get_body(), event.partition_key, event.sequence_number) == (
        b'{"n": 1}',
        "pk-1",
        7,
    )
    assert (
        event.offset == "70"
    )  # a string with cardinality one (the library decodes it as str)
    assert event.enqueued_time == ENQUEUED.replace(tzinfo=None)
    assert event.metadata["Properties"] == {"type": "B"}
    assert event.metadata["SystemProperties"]["SequenceNumber"] == 7
    as_text = decode_trigger(
        [stored(1, body="héllo".encode())],
        many=True,
        data_type="string",
        function_name="fn",
        eventhub_name="hub",
        consumer_group="cg",
        partition_id="2",
    )
    assert as_text[0].get_body() == "héllo".encode()


def test_net_datetime_format() -> None:
    assert (
        net_datetime(datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), utc_kind=False)
        == "2024-01-02T03:04:05"
    )
    assert (
        net_datetime(datetime(2024, 1, 2, 3, 4, 5, 120000, tzinfo=UTC), utc_kind=True)
        == "2024-01-02T03:04:05.12Z"
    )


def test_retry_policies() -> None:
    fixed = RetryPolicy.from_mapping(
        {"strategy": "fixedDelay", "maxRetryCount": 3, "delayInterval": "00:00:02"}
    )
    assert (fixed.strategy, fixed.max_retry_count, fixed.delay(1), fixed.delay(3)) == (
        FIXED_DELAY,
        3,
        2,
        2,
    )
    backoff = RetryPolicy.from_mapping(
        {
            "strategy": "exponential_backoff",
            "max_retry_count": "-1",
            "minimum_interval": "00:00:01",
            "maximum_interval": "00:00:05",
        }
    )
    assert backoff.strategy == EXPONENTIAL_BACKOFF and backoff.max_retry_count == -1
    assert [backoff.delay(n) for n in (1, 2, 3, 4)] == [1, 2, 4, 5]
    for bad in (
        {"strategy": "linear", "maxRetryCount": 1},
        {"strategy": "fixedDelay", "maxRetryCount": 1},
        {
            "strategy": "exponentialBackoff",
            "maxRetryCount": 1,
            "minimumInterval": "00:00:01",
        },
    ):
        with pytest.raises(ValueError):
            RetryPolicy.from_mapping(bad)
    assert "AccountName=devstoreaccount1" in explicit_storage_connection_string(
        "UseDevelopmentStorage=true"
    )


# --- the listener, in process (memory checkpoints) ----------------------------------------


def eh_function(
    target: Callable[..., Any], *, many: bool = True, retry: RetryPolicy | None = None
) -> IndexedFunction:
    arg_name = next(iter(inspect.signature(target).parameters))
    trigger = {
        "type": EVENT_HUB_TRIGGER,
        "name": arg_name,
        "eventHubName": "hub",
        "consumerGroup": "cg",
        "connection": "EventHubConnection",
        "cardinality": "many" if many else "one",
    }
    return IndexedFunction(
        name=target.__name__,
        trigger_type=EVENT_HUB_TRIGGER,
        trigger=trigger,
        user_function=target,
        directory=".",
        retry=retry,
    )


@pytest.fixture
def invoker() -> Iterator[Invoker]:
    invoker = Invoker()
    yield invoker
    invoker.shutdown()


def listen(
    function: IndexedFunction,
    log: LocalEventLog,
    store: MemoryCheckpointStore,
    invoker: Invoker,
    batch: int = 3,
    checkpoint_interval: float = CHECKPOINT_INTERVAL,
) -> tuple[EventHubListener, threading.Event]:
    stop = threading.Event()
    listener = EventHubListener(
        function,
        event_log=log,
        store=store,
        invoker=invoker,
        stop=stop,
        host_config=HostConfig(max_event_batch_size=batch),
        poll_interval=0.01,
        checkpoint_interval=checkpoint_interval,
    )
    listener.start()
    return listener, stop


def checkpoints(
    store: MemoryCheckpointStore, consumer_group: str = "cg", hub: str = "hub"
) -> dict[str, int]:
    return {
        c["partition_id"]: c["sequence_number"]
        for c in store.list_checkpoints(FULLY_QUALIFIED_NAMESPACE, hub, consumer_group)
    }


def test_listener_batches_checkpoints_and_resumes(
    tmp_path: Path, invoker: Invoker
) -> None:
    log = LocalEventLog(tmp_path / "events.db", 2)
    log.append([OutgoingEvent(f"e{i}".encode(), "one-key") for i in range(7)])
    partition = str(log.partition_for("one-key"))
    batches: list[list[int]] = []

    def handler(events: list[func.EventHubEvent]) -> None:
        batches.append([e.sequence_number for e in events])

    store = MemoryCheckpointStore()
    listener, stop = listen(eh_function(handler), log, store, invoker)
    wait_for(lambda: checkpoints(store).get(partition) == 6, 5, "checkpoint at 6")
    stop.set()
    assert listener.join(time.monotonic() + 5) == []
    assert batches == [[0, 1, 2], [3, 4, 5], [6]]

    log.append([OutgoingEvent(b"e7", "one-key")])
    listener, stop = listen(
        eh_function(handler), log, store, invoker
    )  # a "restart": resumes after 6
    wait_for(lambda: checkpoints(store).get(partition) == 7, 5, "checkpoint at 7")
    stop.set()
    listener.join(time.monotonic() + 5)
    assert batches[3:] == [[7]]


class CountingStore(MemoryCheckpointStore):
    def __init__(self) -> None:
        super().__init__()
        self.written: list[int] = []

    def update_checkpoint(self, checkpoint: dict[str, Any], **kwargs: Any) -> None:
        self.written.append(checkpoint["sequence_number"])
        super().update_checkpoint(checkpoint, **kwargs)


def test_checkpoints_of_a_busy_partition_are_written_once_per_interval(
    tmp_path: Path, invoker: Invoker
) -> None:
    log = LocalEventLog(tmp_path / "events.db", 1)
    log.append([OutgoingEvent(f"e{i}".encode(), "k") for i in range(10)])
    batches: list[list[int]] = []

    def handler(events: list[func.EventHubEvent]) -> None:
        batches.append([e.sequence_number for e in events])
        time.sleep(0.05)

    store = CountingStore()
    listener, stop = listen(
        eh_function(handler), log, store, invoker, 2, checkpoint_interval=0.3
    )
    wait_for(lambda: len(batches) == 5, 5, "five batches")
    # The first batch's checkpoint at once, the ones after within the interval: the
    # last completed batch's checkpoint lands without another batch to carry it.
    wait_for(lambda: checkpoints(store).get("0") == 9, 2, "checkpoint at 9")
    stop.set()
    assert listener.join(time.monotonic() + 5) == []
    assert store.written[0] == 1 and store.written[-1] == 9
    assert len(store.written) < len(batches)
    assert store.written == sorted(store.written)


def test_a_stopping_host_writes_the_checkpoint_it_was_holding(
    tmp_path: Path, invoker: Invoker
) -> None:
    log = LocalEventLog(tmp_path / "events.db", 1)
    log.append([OutgoingEvent(f"e{i}".encode(), "k") for i in range(4)])
    batches: list[list[int]] = []

    def handler(events: list[func.EventHubEvent]) -> None:
        batches.append([e.sequence_number for e in events])

    store = CountingStore()
    listener, stop = listen(
        eh_function(handler), log, store, invoker, 2, checkpoint_interval=60
    )
    wait_for(lambda: len(batches) == 2, 5, "two batches")
    time.sleep(0.1)
    assert store.written == [1]  # the second batch's is held for the interval
    stop.set()
    assert listener.join(time.monotonic() + 5) == []
    assert store.written == [1, 3]


class FlakyStore(CountingStore):
    """Refuses its first checkpoint write, as storage that is briefly down does."""

    def update_checkpoint(self, checkpoint: dict[str, Any], **kwargs: Any) -> None:
        if not self.written:
            self.written.append(-1)
            raise ConnectionError("storage down (test)")
        super().update_checkpoint(checkpoint, **kwargs)


def test_a_failed_checkpoint_write_is_tried_again(
    tmp_path: Path, invoker: Invoker
) -> None:
    log = LocalEventLog(tmp_path / "events.db", 1)
    log.append([OutgoingEvent(b"e0", "k")])
    store = FlakyStore()
    listener, stop = listen(
        eh_function(lambda events: None), log, store, invoker, checkpoint_interval=0.2
    )
    wait_for(lambda: checkpoints(store).get("0") == 0, 5, "the checkpoint, retried")
    stop.set()
    assert listener.join(time.monotonic() + 5) == []
    assert store.written == [-1, 0]


def test_a_stop_mid_batch_writes_the_held_checkpoint_not_the_cut_short_one(
    tmp_path: Path, invoker: Invoker
) -> None:
    log = LocalEventLog(tmp_path / "events.db", 1)
    log.append([OutgoingEvent(f"e{i}".encode(), "k") for i in range(3)])
    started = threading.Event()

    def handler(events: list[func.EventHubEvent]) -> None:
        if events[0].sequence_number == 2:
            started.set()
            time.sleep(0.3)  # the host stops while this batch runs

    store = CountingStore()
    listener, stop = listen(
        eh_function(handler), log, store, invoker, 1, checkpoint_interval=60
    )
    assert started.wait(5)
    stop.set()
    assert listener.join(time.monotonic() + 5) == []
    # 0 at once, 1 held for the interval and written at the stop, 2 cut short: never.
    assert store.written == [0, 1]


class CountingLog(LocalEventLog):
    """The real log, counting the readers' queries."""

    reads = 0

    def read(self, *args: Any, **kwargs: Any) -> list[StoredEvent]:
        self.reads += 1
        return super().read(*args, **kwargs)


def test_idle_readers_wait_for_the_log_to_grow_instead_of_polling_it(
    tmp_path: Path, invoker: Invoker
) -> None:
    log = CountingLog(tmp_path / "events.db", 4)
    delivered: list[float] = []
    listener, stop = listen(
        eh_function(lambda events: delivered.append(time.monotonic())),
        log,
        MemoryCheckpointStore(),
        invoker,
    )
    time.sleep(1.0)
    idle_reads = log.reads
    # Polled every 10 ms (the listener's poll interval), four readers would read ~400
    # times; they read once each, then once per idle wake-up.
    assert idle_reads <= 4 * (1 + 1.0 / IDLE_WAKE + 1), idle_reads

    # Another connection (as a publisher in another process) appends: the reader wakes
    # within a few poll intervals, not at its next idle wake-up.
    appended = time.monotonic()
    LocalEventLog(log.path).append([OutgoingEvent(b"e0", "k")])
    wait_for(lambda: delivered, 2, "the event delivered")
    assert delivered[0] - appended < 0.5

    # A stopping host wakes its idle readers at once.
    time.sleep(0.1)
    stopped = time.monotonic()
    stop.set()
    assert listener.join(time.monotonic() + 5) == []
    assert time.monotonic() - stopped < 0.5


def test_failed_batch_is_retried_then_checkpointed(
    tmp_path: Path, invoker: Invoker
) -> None:
    log = LocalEventLog(tmp_path / "events.db", 1)
    log.append([OutgoingEvent(b"poison", "k"), OutgoingEvent(b"fine", "k")])
    attempts: list[tuple[int, list[int]]] = []

    def handler(event: func.EventHubEvent, context: func.Context) -> None:
        attempts.append((context.retry_context.retry_count, [event.sequence_number]))
        if event.get_body() == b"poison":
            raise RuntimeError("poison")

    policy = RetryPolicy(FIXED_DELAY, 2, delay_interval=0.0)
    store = MemoryCheckpointStore()
    listener, stop = listen(
        eh_function(handler, many=False, retry=policy), log, store, invoker
    )
    wait_for(
        lambda: checkpoints(store).get("0") == 1, 5, "checkpoint after the poison event"
    )
    stop.set()
    listener.join(time.monotonic() + 5)
    # Cardinality one: one invocation per event; the failing one 1 + 2 retries, then processing goes on.
    assert attempts == [(0, [0]), (1, [0]), (2, [0]), (0, [1])]


def test_stop_during_retry_delay_does_not_checkpoint(
    tmp_path: Path, invoker: Invoker
) -> None:
    log = LocalEventLog(tmp_path / "events.db", 1)
    log.append([OutgoingEvent(b"x", "k")])
    calls: list[int] = []

    def always_fails(events: list[func.EventHubEvent]) -> None:
        calls.append(len(events))
        raise RuntimeError("down")

    store = MemoryCheckpointStore()
    listener, stop = listen(
        eh_function(
            always_fails, retry=RetryPolicy(FIXED_DELAY, 5, delay_interval=30.0)
        ),
        log,
        store,
        invoker,
    )
    wait_for(lambda: calls, 5, "the first attempt")
    began = time.monotonic()
    stop.set()
    assert listener.join(time.monotonic() + 5) == []
    assert time.monotonic() - began < 1  # the retry delay is cut short
    assert checkpoints(store) == {}


# --- the dev host against Azurite -------------------------------------------------------


def body(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


class EventHubScenario:
    """A sample app copy, a fresh event log and hub name, and a dev host process on them."""

    def __init__(self, root: Path, storage: str) -> None:
        self.hub = f"hub-{uuid.uuid4().hex[:8]}"
        self.app_dir = copy_sample(root / "app")
        self.records = root / "records"
        self.records.mkdir()
        self.log = LocalEventLog(root / "events.db", 4)
        self.storage = storage
        self.env = {
            "AzureWebJobsStorage": storage,
            "LOCAL_EVENT_LOG_PATH": str(self.log.path),
            "SAMPLE_HUB": self.hub,
            "SAMPLE_CG_B": "cg-b",
            "SAMPLE_RECORD_DIR": str(self.records),
        }
        self.host = HostProcess(self.app_dir, self.env)
        self.store = BlobCheckpointStore.from_connection_string(
            storage, checkpoint_container_name()
        )

    def append(self, *events: OutgoingEvent) -> list[StoredEvent]:
        return self.log.append(list(events))

    def records_of(self, function: str) -> list[dict[str, Any]]:
        return read_records(self.records, function)

    def delivered(self, function: str) -> list[tuple[str, int]]:
        """(partition, sequence) of every event delivered to a function, in delivery order."""
        return [
            (r["partition"], e["sequence_number"])
            for r in self.records_of(function)
            for e in r["events"]
        ]

    def checkpoints(self, consumer_group: str) -> dict[str, int]:
        return {
            c["partition_id"]: c["sequence_number"]
            for c in self.store.list_checkpoints(
                FULLY_QUALIFIED_NAMESPACE, self.hub, consumer_group
            )
        }

    def wait_checkpoints(
        self, consumer_group: str, expected: dict[str, int], timeout: float = 10
    ) -> None:
        wait_for(
            lambda: self.checkpoints(consumer_group) == expected,
            timeout,
            f"checkpoints {expected} for {consumer_group} (have {self.checkpoints(consumer_group)})",
            0.1,
        )


@pytest.fixture
def scenario(tmp_path: Path, local_stack: Any) -> Iterator[EventHubScenario]:
    scenario = EventHubScenario(tmp_path, local_stack.settings["AzureWebJobsStorage"])
    try:
        yield scenario
    finally:
        scenario.host.kill()


def test_delivery_batches_fields_and_consumer_groups(
    scenario: EventHubScenario,
) -> None:
    # A backlog before the host starts: 7 events for one key (batches of 3, 3, 1), one for another.
    written = scenario.append(
        *(OutgoingEvent(body(n=i), "customer-1", {"n": str(i)}) for i in range(7))
    )
    part = written[0].partition_id
    other_key = next(
        k
        for k in (f"customer-{i}" for i in range(2, 50))
        if str(scenario.log.partition_for(k)) != part
    )
    other = scenario.append(OutgoingEvent(body(n=99), other_key, {"n": "99"}))[0]
    expected = {part: 6, other.partition_id: 0}

    with scenario.host:
        for group in ("cg-a", "cg-b", "cg-one"):
            scenario.wait_checkpoints(group, expected)
        log = scenario.host.log()

    a_batches = [r for r in scenario.records_of("eh_a") if r["partition"] == part]
    assert [[e["sequence_number"] for e in r["events"]] for r in a_batches][:3] == [
        [0, 1, 2],
        [3, 4, 5],
        [6],
    ]
    assert all(
        len(r["events"]) <= 3
        for r in scenario.records_of("eh_a") + scenario.records_of("eh_b")
    )
    # Every consumer group gets every event, once.
    everything = sorted(
        [(e.partition_id, e.sequence_number) for e in [*written, other]]
    )
    for function in ("eh_a", "eh_b", "eh_one"):
        assert sorted(scenario.delivered(function)) == everything, function
    assert {r["consumer_group"] for r in scenario.records_of("eh_b")} == {"cg-b"}

    first = a_batches[0]["events"][0]
    stored_first = written[0]
    assert first["body"] == json.dumps({"n": 0})
    assert first["partition_key"] == "customer-1"
    assert (first["sequence_number"], first["offset"], first["offset_type"]) == (
        0,
        0,
        "int",
    )
    assert a_batches[0]["events"][1]["offset"] == written[1].offset == len(body(n=0))
    assert first["properties"] == {"n": "0"} and first["system_sequence"] == 0
    assert (
        first["enqueued_time"]
        == stored_first.enqueued_time.replace(tzinfo=None).isoformat()
    )
    one = next(r for r in scenario.records_of("eh_one") if r["partition"] == part)
    assert one["events"][0]["offset_type"] == "str"
    assert (
        "Properties" in one["metadata_keys"]
        and "PropertiesArray" not in one["metadata_keys"]
    )
    assert "Event Hub listener 'eh_a'" in log and "batch <= 3" in log


def test_clean_restart_does_not_redeliver(scenario: EventHubScenario) -> None:
    first = scenario.append(
        OutgoingEvent(body(n=1), "k"), OutgoingEvent(body(n=2), "k")
    )
    part = first[0].partition_id
    with scenario.host:
        scenario.wait_checkpoints("cg-a", {part: 1})
    assert scenario.host.proc is not None and scenario.host.proc.returncode == 0

    later = scenario.append(OutgoingEvent(body(n=3), "k"))[0]
    with scenario.host:
        scenario.wait_checkpoints("cg-a", {part: later.sequence_number})
        scenario.wait_checkpoints("cg-b", {part: later.sequence_number})
    assert scenario.delivered("eh_a") == [(part, 0), (part, 1), (part, 2)]
    assert sorted(scenario.delivered("eh_b")) == [(part, 0), (part, 1), (part, 2)]


def test_batch_in_flight_at_stop_or_crash_is_redelivered(
    scenario: EventHubScenario,
) -> None:
    done = scenario.append(OutgoingEvent(body(n=1), "k"))[0]
    part = done.partition_id

    def started_times(sequence: int) -> int:
        return scenario.delivered("eh_a").count((part, sequence))

    with scenario.host:
        scenario.wait_checkpoints("cg-a", {part: 0})
        slow = scenario.append(OutgoingEvent(body(n=2, sleep=1.0), "k"))[0]
        wait_for(
            lambda: started_times(slow.sequence_number) == 1,
            5,
            "the slow batch to start",
        )
        # Clean stop (SIGTERM) mid-batch: the function finishes, but the batch is not checkpointed.
    assert scenario.host.proc is not None and scenario.host.proc.returncode == 0
    assert "not checkpointed" in scenario.host.log()
    assert scenario.checkpoints("cg-a") == {part: 0}

    with scenario.host:
        wait_for(
            lambda: started_times(slow.sequence_number) == 2, 5, "the slow batch again"
        )
        scenario.host.kill()  # crash (SIGKILL) mid-batch: no checkpoint either
    assert scenario.checkpoints("cg-a") == {part: 0}

    with scenario.host:
        scenario.wait_checkpoints("cg-a", {part: slow.sequence_number})
    assert scenario.delivered("eh_a") == [
        (part, 0),
        (part, 1),
        (part, 1),
        (part, 1),
    ]  # at least once


def test_http_and_trigger_functions_run_apart(scenario: EventHubScenario) -> None:
    # As Flex Consumption scales them apart, the dev host can run either set alone.
    first = scenario.append(OutgoingEvent(body(n=1), "k"))[0]
    part = first.partition_id
    http_only = HostProcess(scenario.app_dir, scenario.env, functions="http")
    with http_only, httpx.Client(base_url=http_only.base_url) as client:
        assert client.get("/sample/items/1").status_code == 200
        time.sleep(1.0)  # a listener polls every 50 ms: it would have delivered by now
    assert scenario.records_of("eh_a") == [] and scenario.checkpoints("cg-a") == {}

    triggers = HostProcess(scenario.app_dir, scenario.env, functions="triggers")
    try:
        with triggers, httpx.Client(base_url=triggers.base_url) as client:
            scenario.wait_checkpoints("cg-a", {part: 0})
            assert client.get("/sample/items/1").status_code == 404
            slow = scenario.append(OutgoingEvent(body(n=2, sleep=1.0), "k"))[0]
            wait_for(
                lambda: (part, slow.sequence_number) in scenario.delivered("eh_a"),
                5,
                "the slow batch to start",
            )
            # SIGTERM mid-batch, as in `all`: the batch finishes but is not checkpointed.
    finally:
        triggers.kill()
    assert triggers.proc is not None and triggers.proc.returncode == 0
    assert scenario.checkpoints("cg-a") == {part: 0}
    assert "not checkpointed" in triggers.log()


def test_retries_then_checkpoint_on_failure(scenario: EventHubScenario) -> None:
    bad = scenario.append(OutgoingEvent(body(n=1, fail=True), "k"))[0]
    part = bad.partition_id
    with scenario.host:
        scenario.wait_checkpoints("cg-a", {part: 0})
        scenario.wait_checkpoints("cg-b", {part: 0})
        good = scenario.append(OutgoingEvent(body(n=2), "k"))[0]
        scenario.wait_checkpoints("cg-a", {part: good.sequence_number})
        log = scenario.host.log()

    attempts_a = [
        r for r in scenario.records_of("eh_a") if r["events"][0]["sequence_number"] == 0
    ]
    # eh_a: @app.retry fixed_delay, 2 retries, 1 s apart; then the batch is checkpointed anyway.
    assert [r["retry"] for r in attempts_a] == [0, 1, 2]
    gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(attempts_a)]
    assert all(0.9 <= gap < 2.5 for gap in gaps), gaps
    # eh_b: no function-level policy, so host.json's (fixedDelay, 1 retry, no delay).
    assert [
        r["retry"]
        for r in scenario.records_of("eh_b")
        if r["events"][0]["sequence_number"] == 0
    ] == [0, 1]
    assert scenario.delivered("eh_a")[-1] == (part, good.sequence_number)
    assert "RuntimeError: failing on purpose at sequence 0" in log
    assert "all 2 retries failed" in log


def test_a_worker_that_dies_stops_the_triggers_host(
    scenario: EventHubScenario,
) -> None:
    # Each Event Hub function in a worker of its own, the timer in another; one gone,
    # the host stops whole, so the stack's supervisor restarts it (no half host).
    triggers = HostProcess(scenario.app_dir, scenario.env, functions="triggers")
    with triggers:
        assert triggers.proc is not None
        workers = child_processes().get(triggers.proc.pid, [])
        assert len(workers) == 3, triggers.log()  # eh_a, eh_b, the timer
        os.kill(workers[0], signal.SIGKILL)
        wait_for(lambda: triggers.proc.poll() is not None, 15, "the host to stop")
    assert "exited with -9; stopping the host" in triggers.log()
    wait_for(
        lambda: not any(Path(f"/proc/{w}").exists() for w in workers), 5, "workers gone"
    )


def test_workers_die_with_a_crashed_triggers_host(scenario: EventHubScenario) -> None:
    triggers = HostProcess(scenario.app_dir, scenario.env, functions="triggers")
    with triggers:
        assert triggers.proc is not None
        workers = child_processes().get(triggers.proc.pid, [])
        assert workers
        triggers.kill()  # SIGKILL to the host process alone
    wait_for(
        lambda: not any(Path(f"/proc/{w}").exists() for w in workers), 5, "workers gone"
    )
