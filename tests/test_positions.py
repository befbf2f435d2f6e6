"""Positions recorded at most once per interval per partition, never across a gap. Pure:
an in-memory store and a hand-moved clock (and one test of the background thread)."""

from __future__ import annotations

import time

from sync import order_detail
from sync.positions import PositionRecorder
from sync.runner import BatchResult, process
from tests.memory_store import DeadLetterList, MemoryStore
from tests.test_runner import delivery, order_event

POSITION = ("projection-state", "order-detail", "order-detail:position:0")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def apply(
    store: MemoryStore, recorder: PositionRecorder | None, *sequences: int
) -> BatchResult:
    """One batch of the live trigger (or, without a recorder, of the catch-up pass):
    order o1 at version = sequence + 1."""
    return process(
        "order-detail",
        order_detail.plan,
        [delivery(order_event(s + 1), s) for s in sequences],
        store,
        DeadLetterList(),
        final_attempt=False,
        positions=recorder,
    )


def recorded(store: MemoryStore) -> int | None:
    doc = store.docs.get(POSITION)
    return None if doc is None else doc["sequenceNumber"]


def started(store: MemoryStore, clock: Clock) -> PositionRecorder:
    """A recorder that has just recorded partition 0 up to sequence 0 (a range from the
    partition's start is written at once)."""
    recorder = PositionRecorder(1.0, clock, background=False)
    apply(store, recorder, 0)
    assert recorded(store) == 0
    return recorder


def test_a_new_owner_writes_its_first_range_two_intervals_after_its_first_batch() -> (
    None
):
    """...by when a previous owner's last range, flushed as it stopped, has landed."""
    store, clock = MemoryStore(), Clock()
    started(store, clock)  # the previous owner
    recorder = PositionRecorder(1.0, clock, background=False)
    apply(store, recorder, 1)
    clock.now += 1.9
    apply(store, recorder, 2)
    assert recorded(store) == 0
    clock.now += 0.1
    apply(store, recorder, 3)
    assert recorded(store) == 3


def test_a_range_from_the_partitions_start_is_written_at_once() -> None:
    """It may create the position: deferred, it could land in a read model emptied in
    the meantime and claim the events that read model never got."""
    store, clock = MemoryStore(), Clock()
    recorder = PositionRecorder(1.0, clock, background=False)
    apply(store, recorder, 0, 1)
    assert recorded(store) == 1
    store.docs.clear()  # the read model emptied (a rebuild's clear)
    clock.now += 0.1
    apply(store, recorder, 2)
    recorder.flush()
    assert recorded(store) is None  # a later range never creates it


def test_batches_within_the_interval_share_one_position_write() -> None:
    store, clock = MemoryStore(), Clock()
    recorder = started(store, clock)
    requests = store.requests
    for sequence in (1, 2, 3):
        clock.now += 0.2
        apply(store, recorder, sequence)
    assert store.requests - requests == 3  # the three order writes, no position yet
    assert recorded(store) == 0
    recorder.flush(due_only=True)
    assert recorded(store) == 0  # 0.6 s: not due
    clock.now += 0.4
    recorder.flush(due_only=True)
    assert store.requests - requests == 4  # one write for the three batches
    position = store.docs[POSITION]
    assert (position["sequenceNumber"], position["position"]) == (3, 4)
    assert recorder.pending() == []
    # The next batch reports that background write with its own requests.
    clock.now += 0.1
    assert apply(store, recorder, 4).requests == 2


def test_a_batch_that_finds_its_partition_due_writes_the_whole_range() -> None:
    store, clock = MemoryStore(), Clock()
    recorder = started(store, clock)
    clock.now += 0.5
    apply(store, recorder, 1, 2)
    clock.now += 0.5
    apply(store, recorder, 3)
    assert recorded(store) == 3
    assert recorder.pending() == []


def test_a_range_never_bridges_a_gap_after_it() -> None:
    store, clock = MemoryStore(), Clock()
    recorder = started(store, clock)
    clock.now += 0.1
    apply(store, recorder, 1)
    # 2-4 were never applied (out of retries): 5 does not continue the pending range, so
    # the range up to 1 is written first and 5 waits on its own...
    clock.now += 0.1
    apply(store, recorder, 5)
    assert recorded(store) == 1
    [pending] = recorder.pending()
    assert (pending.requires_at_least, pending.version) == (4, 5)
    # ... and its write is refused by the guard: the gap stays for the catch-up pass.
    recorder.flush()
    assert recorded(store) == 1
    # Catch-up applies 2-4 and records them; the next live batch continues from there.
    process(
        "order-detail",
        order_detail.plan,
        [delivery(order_event(s + 1), s) for s in (2, 3, 4)],
        store,
        DeadLetterList(),
        final_attempt=False,
        after=1,
    )
    clock.now += 5
    apply(store, recorder, 5, 6)
    assert recorded(store) == 6


def test_a_range_never_bridges_a_gap_before_it() -> None:
    """A redelivery from an older checkpoint that ends before the pending range starts
    must not make one range of both: what lies between may be unapplied."""
    store, clock = MemoryStore(), Clock()
    recorder = started(store, clock)
    clock.now += 0.1
    apply(store, recorder, 5, 6)  # the position stands at 0: 1-4 are a gap
    clock.now += 0.1
    apply(store, recorder, 1, 2)  # 1-2 again; 3-4 still missing
    recorder.flush()
    assert recorded(store) == 2


def test_a_redelivered_batch_joins_the_range_it_overlaps() -> None:
    store, clock = MemoryStore(), Clock()
    recorder = started(store, clock)
    clock.now += 0.1
    apply(store, recorder, 1, 2, 3)
    clock.now += 0.1
    apply(store, recorder, 2, 3, 4)  # a restart delivered 2-3 again
    [pending] = recorder.pending()
    assert (pending.requires_at_least, pending.version) == (0, 4)
    recorder.flush()
    assert recorded(store) == 4


def test_a_failed_write_leaves_the_position_behind_and_the_next_range_waits(
    caplog,
) -> None:
    class Flaky(MemoryStore):
        fail = False

        def execute(self, write):  # type: ignore[no-untyped-def]
            if self.fail and write.container == "projection-state":
                raise TimeoutError("slow")
            super().execute(write)

    store, clock = Flaky(), Clock()
    recorder = started(store, clock)
    store.fail = True
    clock.now += 2
    apply(store, recorder, 1)  # due: written, and the write fails
    assert "could not record the position" in caplog.text
    store.fail = False
    clock.now += 2
    apply(store, recorder, 2)
    # 2 continues from 1, which never landed: refused, as per batch.
    assert recorded(store) == 0


def test_a_quiet_partition_is_recorded_by_the_background_thread() -> None:
    store = MemoryStore()
    recorder = PositionRecorder(0.2)
    apply(store, recorder, 0)
    apply(store, recorder, 1)
    deadline = time.monotonic() + 10
    while recorded(store) != 1:
        assert time.monotonic() < deadline, "the pending position was never written"
        time.sleep(0.02)
    assert recorder.pending() == []
