"""The local event log (shared/eventlog.py): partitioning, positions, durability, atomicity."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.eventlog import LocalEventLog, OutgoingEvent

REPO_ROOT = Path(__file__).resolve().parent.parent


def event(n: int, key: str | None = "k", **props: str) -> OutgoingEvent:
    return OutgoingEvent(f"event-{n}".encode(), key, props)


def test_same_key_same_partition_and_keys_spread(tmp_path: Path) -> None:
    log = LocalEventLog(tmp_path / "events.db", 4)
    stored = log.append([event(i, f"customer-{i % 20}") for i in range(200)])
    by_key: dict[str, set[int]] = {}
    for s in stored:
        by_key.setdefault(s.partition_key, set()).add(s.partition)
    assert all(len(parts) == 1 for parts in by_key.values())
    assert {p for parts in by_key.values() for p in parts} == {0, 1, 2, 3}
    # Stable across instances (and processes): a hash of the key, not Python's hash().
    other = LocalEventLog(tmp_path / "other.db", 4)
    assert [other.partition_for(f"customer-{i}") for i in range(20)] == [
        log.partition_for(f"customer-{i}") for i in range(20)
    ]
    assert log.partition_for(None) == 0
    assert log.partition_ids == ["0", "1", "2", "3"]


def test_sequence_numbers_and_offsets_per_partition(tmp_path: Path) -> None:
    log = LocalEventLog(tmp_path / "events.db", 2)
    bodies = [b"a", b"bb", b"ccc", b"dddd"]
    first = log.append([OutgoingEvent(b, "same") for b in bodies[:2]])
    second = log.append([OutgoingEvent(b, "same") for b in bodies[2:]])
    stored = first + second
    assert [s.sequence_number for s in stored] == [0, 1, 2, 3]
    assert [s.offset for s in stored] == [
        0,
        1,
        3,
        6,
    ]  # byte offsets: cumulative body lengths
    assert len({s.partition for s in stored}) == 1
    partition = stored[0].partition
    assert stored[0].partition_id == str(partition)
    assert log.last_sequence(partition) == 3
    assert log.last_sequence(1 - partition) is None
    assert [e.sequence_number for e in log.read(partition, None, 10)] == [0, 1, 2, 3]
    assert [e.body for e in log.read(partition, 1, 10)] == [b"ccc", b"dddd"]
    assert [e.sequence_number for e in log.read(str(partition), 0, 2)] == [1, 2]
    assert log.read(partition, 3, 10) == []


def test_durable_across_reopen_and_keeps_partition_count(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "events.db"
    log = LocalEventLog(path, 4)
    before = datetime.now(UTC)
    written = log.append(
        [OutgoingEvent(b"\x00\xffbinary", "key-1", {"type": "OrderPlaced", "v": "1"})]
    )[0]
    log.close()

    reopened = LocalEventLog(path, 8)  # an existing log keeps its partition count
    assert reopened.partition_count == 4
    (read,) = reopened.read(written.partition, None, 10)
    assert read == written
    assert read.body == b"\x00\xffbinary"
    assert read.properties == {"type": "OrderPlaced", "v": "1"}
    assert read.enqueued_time.tzinfo is not None
    assert before <= read.enqueued_time <= datetime.now(UTC)


def test_append_is_atomic(tmp_path: Path) -> None:
    log = LocalEventLog(tmp_path / "events.db", 2)
    bad = OutgoingEvent(b"x", "k", {"not-json": object()})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        log.append([event(1), bad])
    assert all(log.last_sequence(p) is None for p in log.partition_ids)
    log.append([event(2)])
    assert [e.body for e in log.read(log.partition_for("k"), None, 10)] == [b"event-2"]


def test_concurrent_appends_from_threads_and_another_process(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    log = LocalEventLog(path, 1)
    script = (
        "import sys; from shared.eventlog import LocalEventLog, OutgoingEvent\n"
        "log = LocalEventLog(sys.argv[1], 1)\n"
        "for i in range(40): log.append([OutgoingEvent(b'p', 'k')])\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script, str(path)], cwd=REPO_ROOT)

    def writer() -> None:
        for _ in range(20):
            log.append([OutgoingEvent(b"tt", "k"), OutgoingEvent(b"tt", "k")])

    threads = [threading.Thread(target=writer) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert child.wait(30) == 0

    events = log.read(0, None, 1000)
    assert [e.sequence_number for e in events] == list(range(160))
    offsets = [e.offset for e in events]
    assert offsets == [sum(len(e.body) for e in events[:i]) for i in range(len(events))]


def test_an_append_queued_too_long_fails_as_locked(tmp_path, monkeypatch):
    from shared import eventlog

    monkeypatch.setattr(eventlog, "APPEND_WAIT_SECONDS", 0.05)
    log = LocalEventLog(tmp_path / "events.db", 1)
    # Another thread's append, stuck, holds the queue.
    with log._appending, pytest.raises(sqlite3.OperationalError, match="locked"):
        log.append([OutgoingEvent(b"e", "k")])
    assert log.append([OutgoingEvent(b"e", "k")])[0].sequence_number == 0
