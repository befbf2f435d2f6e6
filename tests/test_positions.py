"""Positions recorded at most once per interval per partition: never across a gap, never
lost while the process runs. Pure: an in-memory store and a hand-moved clock."""

from __future__ import annotations

import time

from sync import order_detail
from sync.positions import PositionRecorder
from sync.runner import process
from tests.memory_store import DeadLetterList, MemoryStore
from tests.test_runner import delivery, order_event

POSITION = ("projection-state", "order-detail", "order-detail:position:0")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def apply(store: MemoryStore, recorder: PositionRecorder, *sequences: int) -> None:
    """One batch of the live trigger: order o1 at version = sequence + 1."""
    process(
        "order-detail",
        order_detail.plan,
        [delivery(order_event(s + 1), s) for s in sequences],
        store,
        DeadLetterList(),
        final_attempt=False,
        positions=recorder,
    )


def test_batches_within_the_interval_share_one_position_write() -> None:
    store, clock = MemoryStore(), Clock()
    recorder = PositionRecorder(1.0, clock, background=False)
    apply(store, recorder, 0)  # the partition's first: recorded at once
    assert store.docs[POSITION]["sequenceNumber"] == 0
    requests = store.requests
    for sequence in (1, 2, 3):
        clock.now += 0.2
        apply(store, recorder, sequence)
    assert store.requests - requests == 3  # the three order writes, no position yet
    assert store.docs[POSITION]["sequenceNumber"] == 0
    recorder.flush(due_only=True)
    assert store.docs[POSITION]["sequenceNumber"] == 0  # 0.6 s: not due
    clock.now += 0.4
    recorder.flush(due_only=True)
    assert store.requests - requests == 4  # one write for the three batches
    position = store.docs[POSITION]
    assert (position["sequenceNumber"], position["position"]) == (3, 4)
    assert recorder.pending() == []


def test_a_batch_that_finds_its_partition_due_writes_the_whole_range() -> None:
    store, clock = MemoryStore(), Clock()
    recorder = PositionRecorder(1.0, clock, background=False)
    apply(store, recorder, 0)
    clock.now += 0.5
    apply(store, recorder, 1, 2)
    clock.now += 0.5
    apply(store, recorder, 3)
    assert store.docs[POSITION]["sequenceNumber"] == 3
    assert recorder.pending() == []


def test_a_range_never_bridges_a_gap() -> None:
    store, clock = MemoryStore(), Clock()
    recorder = PositionRecorder(1.0, clock, background=False)
    apply(store, recorder, 0)
    clock.now += 0.1
    apply(store, recorder, 1)
    # 2-4 were never applied (out of retries): 5 does not continue the pending range, so
    # the range up to 1 is written first and 5 waits on its own...
    clock.now += 0.1
    apply(store, recorder, 5)
    assert store.docs[POSITION]["sequenceNumber"] == 1
    [pending] = recorder.pending()
    assert (pending.requires_at_least, pending.version) == (4, 5)
    # ... and its write is refused by the guard: the gap stays for the catch-up pass.
    recorder.flush()
    assert store.docs[POSITION]["sequenceNumber"] == 1
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
    assert store.docs[POSITION]["sequenceNumber"] == 6


def test_a_redelivered_batch_joins_the_range_it_overlaps() -> None:
    store, clock = MemoryStore(), Clock()
    recorder = PositionRecorder(1.0, clock, background=False)
    apply(store, recorder, 0)
    clock.now += 0.1
    apply(store, recorder, 1, 2, 3)
    clock.now += 0.1
    apply(store, recorder, 2, 3, 4)  # a restart delivered 2-3 again
    [pending] = recorder.pending()
    assert (pending.requires_at_least, pending.version) == (0, 4)
    recorder.flush()
    assert store.docs[POSITION]["sequenceNumber"] == 4


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
    recorder = PositionRecorder(1.0, clock, background=False)
    apply(store, recorder, 0)
    store.fail = True
    clock.now += 2
    apply(store, recorder, 1)  # due: written, and the write fails
    assert "could not record the position" in caplog.text
    store.fail = False
    clock.now += 2
    apply(store, recorder, 2)
    # 2 continues from 1, which never landed: refused, as per batch.
    assert store.docs[POSITION]["sequenceNumber"] == 0


def test_a_quiet_partition_is_recorded_by_the_background_thread() -> None:
    store = MemoryStore()
    recorder = PositionRecorder(0.05)
    apply(store, recorder, 0)
    apply(store, recorder, 1)
    assert store.docs[POSITION]["sequenceNumber"] == 0
    deadline = time.monotonic() + 5
    while store.docs[POSITION]["sequenceNumber"] != 1:
        assert time.monotonic() < deadline, "the pending position was never written"
        time.sleep(0.01)
    assert recorder.pending() == []
