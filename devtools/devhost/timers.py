"""Timer triggers: NCRONTAB schedules (6 fields, seconds first; 5 fields also accepted)
or TimeSpan intervals ("HH:MM:SS"), `runOnStartup`, one thread per timer.

A timer never overlaps itself: the next occurrence is computed after a run ends, and
occurrences missed while it ran are skipped, as the host's timer listener does. Times are
UTC (WEBSITE_TIME_ZONE is not honoured).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from azure.functions import meta
from azure.functions.timer import TimerRequestConverter
from croniter import croniter

from devtools.devhost.indexing import TIMER_TRIGGER, IndexedFunction
from devtools.devhost.invocation import Invoker
from devtools.devhost.listeners import ListenerGroup
from devtools.devhost.retry import RetryPolicy, run_with_retry
from devtools.devhost.settings import net_datetime, parse_timespan

log = logging.getLogger("host")

# An occurrence fired later than this counts as past due.
PAST_DUE_AFTER = timedelta(seconds=1)


class Schedule(Protocol):
    def next_after(self, moment: datetime) -> datetime: ...


@dataclass(frozen=True)
class CronSchedule:
    expression: str

    def __post_init__(self) -> None:
        fields = self.expression.split()
        if len(fields) not in (5, 6) or not croniter.is_valid(
            self.expression, second_at_beginning=len(fields) == 6
        ):
            raise ValueError(
                f"invalid NCRONTAB expression {self.expression!r} (6 fields, seconds first)"
            )

    def next_after(self, moment: datetime) -> datetime:
        seconds_first = len(self.expression.split()) == 6
        return croniter(
            self.expression, moment, second_at_beginning=seconds_first
        ).get_next(datetime)


@dataclass(frozen=True)
class IntervalSchedule:
    interval: timedelta

    def next_after(self, moment: datetime) -> datetime:
        return moment + self.interval


def parse_schedule(expression: str) -> Schedule:
    text = expression.strip()
    if ":" in text and " " not in text:
        seconds = parse_timespan(text)
        if seconds <= 0:
            raise ValueError(f"a timer interval must be positive: {expression!r}")
        return IntervalSchedule(timedelta(seconds=seconds))
    return CronSchedule(text)


def timer_request(
    *, past_due: bool, last: datetime | None, next_: datetime, use_monitor: bool
) -> Any:
    """`func.TimerRequest`, decoded by the library from the JSON the host sends (TimerInfo)."""
    status = None
    if use_monitor:
        status = {
            "Last": net_datetime(
                last or datetime.min.replace(tzinfo=UTC), utc_kind=True
            ),
            "Next": net_datetime(next_, utc_kind=True),
            "LastUpdated": net_datetime(datetime.now(UTC), utc_kind=True),
        }
    info = {
        "Schedule": {"AdjustForDST": True},
        "ScheduleStatus": status,
        "IsPastDue": past_due,
    }
    return TimerRequestConverter.decode(
        meta.Datum(json.dumps(info), "json"), trigger_metadata={}
    )


class TimerListener:
    def __init__(
        self,
        function: IndexedFunction,
        *,
        invoker: Invoker,
        stop: threading.Event,
        retry: RetryPolicy | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.function = function
        self.schedule = parse_schedule(str(function.trigger["schedule"]))
        self.run_on_startup = bool(function.trigger.get("runOnStartup"))
        use_monitor = function.trigger.get("useMonitor")
        self.use_monitor = True if use_monitor is None else bool(use_monitor)
        self.invoker = invoker
        self.stop_event = stop
        self.retry = function.retry or retry
        self.clock = clock
        self.last: datetime | None = None
        self.thread = threading.Thread(
            target=self._run, name=f"timer-{function.name}", daemon=True
        )

    def start(self) -> None:
        log.info(
            "Timer '%s': schedule '%s'%s, next at %s",
            self.function.name,
            self.function.trigger["schedule"],
            ", runOnStartup" if self.run_on_startup else "",
            self.schedule.next_after(self.clock()).isoformat(),
        )
        self.thread.start()

    def join(self, deadline: float) -> list[str]:
        self.thread.join(max(0.0, deadline - time.monotonic()))
        return [self.thread.name] if self.thread.is_alive() else []

    def _run(self) -> None:
        if self.run_on_startup and not self.stop_event.is_set():
            now = self.clock()
            self._fire(now, now)
        next_time = self.schedule.next_after(self.clock())
        while not self.stop_event.is_set():
            delay = (next_time - self.clock()).total_seconds()
            if delay > 0 and self.stop_event.wait(delay):
                return
            self._fire(next_time, self.clock())
            next_time = self.schedule.next_after(max(self.clock(), next_time))

    def _fire(self, scheduled: datetime, now: datetime) -> None:
        past_due = now - scheduled > PAST_DUE_AFTER
        request_next = self.schedule.next_after(max(now, scheduled))

        def attempt(retry_count: int) -> None:
            request = timer_request(
                past_due=past_due,
                last=self.last,
                next_=request_next,
                use_monitor=self.use_monitor,
            )
            self.invoker.execute(self.function, request, retry_count)

        run_with_retry(
            attempt, self.retry, self.stop_event, log, f"Functions.{self.function.name}"
        )
        self.last = scheduled


class TimerRunner(ListenerGroup[TimerListener]):
    """All timer listeners of the app, started and stopped together."""

    def __init__(
        self,
        functions: Iterable[IndexedFunction],
        *,
        invoker: Invoker,
        host_retry: RetryPolicy | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__()
        for function in functions:
            if function.trigger_type != TIMER_TRIGGER:
                continue
            try:
                self.listeners.append(
                    TimerListener(
                        function,
                        invoker=invoker,
                        stop=self.stop_event,
                        retry=host_retry,
                        clock=clock,
                    )
                )
            except ValueError as exc:
                log.error("Function '%s' is in error: %s", function.name, exc)
