"""Recording the live projections' positions at most once a second per partition.

Every applied batch advances its partition's recorded position (`sync.runner.position_write`:
contiguous, guarded). Written batch by batch, that is one Cosmos DB request per batch,
whatever the batch holds: at low load, most of a projection's requests. The recorder keeps,
per partition, the range of applied batches not yet recorded and writes it once the
partition's last write is `interval` old: from the batch that finds it due, or from a
background thread, so a partition that falls quiet is recorded too, and when the process
exits.

What it costs: the position, and the lag `GET /api/projections` shows, trails by up to
`interval`. A process that dies leaves its position that far behind what it applied; the
next owner's ranges are refused as a gap and the catch-up pass re-drives those events after
PROJECTION_CATCH_UP_AFTER_SECONDS (applying them again changes nothing). A new owner of a
partition writes its first range only two intervals after its first batch, by when the
previous owner's last range (flushed as it stopped) has landed; a range from the
partition's very start, which may create the position, is written at once. A range never bridges a
gap: a batch that does not touch the pending range on both sides has that range written
first and starts its own, which the position's guard refuses if the gap is real, as it
would refuse the batch's own write.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from sync.ports import Writer
from sync.writes import Upsert

log = logging.getLogger(__name__)

INTERVAL = 1.0  # seconds between two writes of one partition's position


def continues(pending: Upsert, write: Upsert) -> bool:
    """The two ranges overlap or touch: together they are one range, with no gap."""
    start, pending_start = write.requires_at_least, pending.requires_at_least
    if start is None or pending_start is None:
        return False
    return start <= pending.version and write.version >= pending_start


def merged(pending: Upsert, write: Upsert) -> Upsert:
    """One write for both ranges (`write` continues `pending`): from the earlier start up
    to the later end, with the later batch's fields and the higher position."""
    later = write if write.version >= pending.version else pending
    positions = [
        p
        for p in (pending.fields.get("position"), write.fields.get("position"))
        if p is not None
    ]
    starts = [
        s for s in (pending.requires_at_least, write.requires_at_least) if s is not None
    ]
    return replace(
        later,
        requires_at_least=min(starts) if starts else None,
        fields={**later.fields, "position": max(positions) if positions else None},
    )


@dataclass
class _Partition:
    lock: threading.Lock = field(default_factory=threading.Lock)
    pending: Upsert | None = None
    writer: Writer | None = None
    written_at: float = 0.0

    def due(self, interval: float, now: float) -> bool:
        return self.pending is not None and now >= self.written_at + interval


class PositionRecorder:
    """The pending positions of one process's live projections, keyed by document."""

    def __init__(
        self,
        interval: float = INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        *,
        background: bool = True,
    ) -> None:
        self.interval = interval
        self._clock = clock
        self._background = background
        self._partitions: dict[str, _Partition] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._unreported = 0  # requests of writes made outside any batch

    def take_requests(self) -> int:
        """Cosmos DB requests of background writes since the last call (a batch reports
        them with its own, so request counts stay whole)."""
        with self._lock:
            taken, self._unreported = self._unreported, 0
        return taken

    def note(self, write: Upsert, writer: Writer) -> None:
        """A batch was applied: its position write is due now or joins the pending range."""
        with self._lock:
            part = self._partitions.get(write.id)
            if part is None:
                # New here (a start, or a partition taken over): wait out the previous
                # owner's last range before writing.
                part = _Partition(written_at=self._clock() + self.interval)
                self._partitions[write.id] = part
        with part.lock:
            if part.pending is not None and not continues(part.pending, write):
                self._write(part, writer)  # the range before the gap goes first
            part.pending = (
                write if part.pending is None else merged(part.pending, write)
            )
            part.writer = writer
            # A range from the partition's start may create the position: written at
            # once, it cannot land in a read model emptied meanwhile (a rebuild's clear, a
            # deleted database) and claim events that read model never got.
            assert part.pending is not None
            if part.pending.may_create() or part.due(self.interval, self._clock()):
                self._write(part, writer)
            waiting = part.pending is not None
        if waiting and self._background:
            self._start()
            self._wake.set()

    def flush(self, *, due_only: bool = False) -> None:
        """Write what is pending (only what is due with `due_only`), outside any batch."""
        with self._lock:
            parts = list(self._partitions.values())
        for part in parts:
            with part.lock:
                if part.pending is not None and (
                    not due_only or part.due(self.interval, self._clock())
                ):
                    self._write(part)

    def pending(self) -> list[Upsert]:
        with self._lock:
            return [p.pending for p in self._partitions.values() if p.pending]

    def _write(self, part: _Partition, batch_writer: Writer | None = None) -> None:
        """Under the partition's lock, so its writes go out in order. The requests count
        with the batch whose writer this is, or else with the next batch to report."""
        write, writer = part.pending, part.writer
        part.pending, part.written_at = None, self._clock()
        assert write is not None and writer is not None
        before = writer.requests
        try:
            writer.execute(write)
        except Exception:
            # As a lost write: the next range is refused (a gap) until catch-up re-drives it.
            log.warning("could not record the position %s", write.id, exc_info=True)
        if writer is not batch_writer:
            with self._lock:
                self._unreported += writer.requests - before

    def _next_due(self) -> float | None:
        with self._lock:
            parts = list(self._partitions.values())
        due = [p.written_at + self.interval for p in parts if p.pending is not None]
        return max(0.0, min(due) - self._clock()) if due else None

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(
                target=self._run, name="positions", daemon=True
            )
            self._thread.start()
        atexit.register(self.flush)  # an exiting process records what it applied

    def _run(self) -> None:
        while True:
            try:
                delay = self._next_due()
                if delay is None or delay > 0:
                    self._wake.wait(delay)
                    self._wake.clear()
                    continue
                self.flush(due_only=True)
            except Exception:  # the thread must outlive any one failure
                log.exception("recording positions failed; trying again")
                time.sleep(self.interval)
