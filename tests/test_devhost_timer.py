"""Dev host timers: NCRONTAB parsing, firing on schedule, runOnStartup, no overlap, retries."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from devtools.devhost.indexing import TIMER_TRIGGER, IndexedFunction
from devtools.devhost.invocation import Invoker
from devtools.devhost.retry import RetryPolicy
from devtools.devhost.timers import (
    CronSchedule,
    IntervalSchedule,
    TimerRunner,
    parse_schedule,
)
from tests.devhost_sample.harness import (
    HostProcess,
    copy_sample,
    read_records,
    wait_for,
)

T0 = datetime(2024, 1, 1, 0, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("*/5 * * * * *", T0 + timedelta(seconds=1), T0 + timedelta(seconds=5)),
        ("0 */5 * * * *", T0 + timedelta(seconds=1), T0 + timedelta(minutes=5)),
        (
            "30 0 9 * * 1-5",
            T0,
            datetime(2024, 1, 1, 9, 0, 30, tzinfo=UTC),
        ),  # 2024-01-01 is a Monday
        ("0 0 9 * * Sat", T0, datetime(2024, 1, 6, 9, 0, tzinfo=UTC)),
        (
            "*/10 * * * *",
            T0 + timedelta(seconds=1),
            T0 + timedelta(minutes=10),
        ),  # 5 fields: minutes first
        ("00:00:30", T0, T0 + timedelta(seconds=30)),
    ],
)
def test_schedules(expression: str, after: datetime, expected: datetime) -> None:
    assert parse_schedule(expression).next_after(after) == expected


def test_schedule_kinds_and_errors() -> None:
    assert isinstance(parse_schedule("0 * * * * *"), CronSchedule)
    assert isinstance(parse_schedule("01:00:00"), IntervalSchedule)
    for bad in ("every minute", "* * * *", "61 * * * * *", "00:00:00"):
        with pytest.raises(ValueError):
            parse_schedule(bad)


def timer_function(
    target: Callable[..., Any],
    schedule: str,
    *,
    run_on_startup: bool = False,
    retry: RetryPolicy | None = None,
) -> IndexedFunction:
    trigger = {
        "type": TIMER_TRIGGER,
        "name": "timer",
        "schedule": schedule,
        "runOnStartup": run_on_startup,
        "useMonitor": False,
    }
    return IndexedFunction(
        name=target.__name__,
        trigger_type=TIMER_TRIGGER,
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


def run_for(runner: TimerRunner, seconds: float) -> None:
    runner.start()
    try:
        time.sleep(seconds)
    finally:
        assert runner.stop(timeout=5) == []


def test_fires_on_whole_seconds_after_run_on_startup(invoker: Invoker) -> None:
    calls: list[tuple[float, func.TimerRequest]] = []

    def every_second(timer: func.TimerRequest) -> None:
        calls.append((time.time(), timer))

    started = time.time()
    run_for(
        TimerRunner(
            [timer_function(every_second, "* * * * * *", run_on_startup=True)],
            invoker=invoker,
        ),
        2.3,
    )
    assert (
        calls[0][0] - started < 0.3
    )  # runOnStartup: right away, not at the next second
    scheduled = [at for at, _ in calls[1:]]
    assert 2 <= len(scheduled) <= 3
    assert all(at % 1 < 0.25 for at in scheduled)  # at the top of each second
    assert all(
        b - a == pytest.approx(1, abs=0.25) for a, b in itertools.pairwise(scheduled)
    )
    assert all(
        isinstance(t, func.TimerRequest) and t.past_due is False for _, t in calls
    )


def test_never_overlaps_and_skips_missed_occurrences(invoker: Invoker) -> None:
    spans: list[tuple[float, float]] = []
    active = {"now": 0, "max": 0}
    lock = threading.Lock()

    def slow(timer: func.TimerRequest) -> None:
        with lock:
            active["now"] += 1
            active["max"] = max(active["max"], active["now"])
        begin = time.time()
        time.sleep(1.1)
        spans.append((begin, time.time()))
        with lock:
            active["now"] -= 1

    run_for(TimerRunner([timer_function(slow, "* * * * * *")], invoker=invoker), 3.3)
    assert active["max"] == 1
    assert len(spans) >= 2
    for (_, end), (begin, _) in itertools.pairwise(spans):
        assert begin >= end  # the next run starts after the previous one ended
        assert (
            begin - end < 1.0
        )  # ...at the next whole second: missed occurrences are skipped
    assert (
        len(spans) <= 2
    )  # every second for 3.3 s, 1.1 s per run: only every other second fires


def test_retry_policy_and_async_timer(invoker: Invoker) -> None:
    attempts: list[int] = []

    async def flaky(timer: func.TimerRequest, context: func.Context) -> None:
        attempts.append(context.retry_context.retry_count)
        if context.retry_context.retry_count < 2:
            raise RuntimeError("not yet")

    policy = RetryPolicy.from_mapping(
        {
            "strategy": "fixed_delay",
            "max_retry_count": "3",
            "delay_interval": "00:00:00",
        }
    )
    runner = TimerRunner(
        [timer_function(flaky, "0 0 0 1 1 *", run_on_startup=True, retry=policy)],
        invoker=invoker,
    )
    runner.start()
    try:
        wait_for(lambda: len(attempts) >= 3, 3, "three attempts")
        time.sleep(0.2)
    finally:
        runner.stop(timeout=5)
    assert attempts == [0, 1, 2]  # retried until it succeeded, not beyond


def test_stop_is_prompt_while_waiting(invoker: Invoker) -> None:
    runner = TimerRunner(
        [timer_function(lambda timer: None, "0 0 0 1 1 *")], invoker=invoker
    )
    runner.start()
    began = time.monotonic()
    assert runner.stop(timeout=5) == []
    assert time.monotonic() - began < 0.5


def test_sample_timer_in_the_dev_host(tmp_path: Path) -> None:
    app_dir = copy_sample(tmp_path / "app")
    records = tmp_path / "records"
    records.mkdir()
    env = {"SAMPLE_RECORD_DIR": str(records), "SAMPLE_TIMER_SCHEDULE": "*/1 * * * * *"}
    with HostProcess(app_dir, env) as host:
        ticks = wait_for(
            lambda: (r := read_records(records, "tick")) and len(r) >= 3 and r,
            6,
            "three ticks",
        )
    assert all(t["past_due"] is False for t in ticks)
    assert all(
        t["at"] % 1 < 0.25 for t in ticks[1:]
    )  # after the startup run: on the second
    assert "Executed 'Functions.tick' (Succeeded" in host.log()


def test_timers_run_only_in_the_process_running_the_triggers(tmp_path: Path) -> None:
    app_dir = copy_sample(tmp_path / "app")
    records = tmp_path / "records"
    records.mkdir()
    env = {"SAMPLE_RECORD_DIR": str(records), "SAMPLE_TIMER_SCHEDULE": "*/1 * * * * *"}
    with HostProcess(app_dir, env, functions="http"):
        time.sleep(1.5)  # runOnStartup and a 1 s schedule would have fired by now
    assert read_records(records, "tick") == []
    with HostProcess(app_dir, env, functions="triggers") as host:
        wait_for(lambda: read_records(records, "tick"), 5, "a tick")
    # In the triggers host's worker for the timers (devtools/devhost/workers.py).
    assert any(
        " triggers/tick [" in line and "Executed 'Functions.tick' (Succeeded" in line
        for line in host.log().splitlines()
    )
