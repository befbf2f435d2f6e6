"""Retry policies (function-level `@app.retry` or host.json `retry`) and the retry loop.

As in the host, a retry re-invokes the function with the same trigger input (for Event
Hubs: the same batch), and a retry delay is cut short when the host stops.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from devtools.devhost.settings import parse_timespan

FIXED_DELAY = "fixedDelay"
EXPONENTIAL_BACKOFF = "exponentialBackoff"
_STRATEGIES = {
    "fixeddelay": FIXED_DELAY,
    "fixed_delay": FIXED_DELAY,
    "exponentialbackoff": EXPONENTIAL_BACKOFF,
    "exponential_backoff": EXPONENTIAL_BACKOFF,
}


@dataclass(frozen=True)
class RetryPolicy:
    strategy: str
    max_retry_count: int  # -1: retry forever, as in the host
    delay_interval: float = 0.0
    minimum_interval: float = 0.0
    maximum_interval: float = 0.0

    def delay(self, retry_number: int) -> float:
        """Seconds to wait before retry `retry_number` (1 for the first retry)."""
        if self.strategy == FIXED_DELAY:
            return self.delay_interval
        # The host randomizes the exponential delay; a deterministic doubling keeps tests exact.
        return min(
            self.maximum_interval, self.minimum_interval * 2 ** max(0, retry_number - 1)
        )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> RetryPolicy:
        """From host.json `retry` (camelCase) or a function's `retry_policy` setting (snake_case)."""

        def get(*names: str) -> Any:
            for name in names:
                for key, value in data.items():
                    if key.lower() == name.lower() and value is not None:
                        return value
            return None

        raw_strategy = str(get("strategy") or "")
        strategy = _STRATEGIES.get(raw_strategy.lower())
        if strategy is None:
            raise ValueError(
                f"unknown retry strategy {raw_strategy!r} (fixedDelay or exponentialBackoff)"
            )
        count = get("maxRetryCount", "max_retry_count")
        if count is None:
            raise ValueError("a retry policy needs maxRetryCount")
        if strategy == FIXED_DELAY:
            delay = get("delayInterval", "delay_interval")
            if delay is None:
                raise ValueError("a fixedDelay retry policy needs delayInterval")
            return cls(strategy, int(count), delay_interval=parse_timespan(delay))
        minimum, maximum = (
            get("minimumInterval", "minimum_interval"),
            get("maximumInterval", "maximum_interval"),
        )
        if minimum is None or maximum is None:
            raise ValueError(
                "an exponentialBackoff retry policy needs minimumInterval and maximumInterval"
            )
        return cls(
            strategy,
            int(count),
            minimum_interval=parse_timespan(minimum),
            maximum_interval=parse_timespan(maximum),
        )


@dataclass(frozen=True)
class RetryOutcome:
    succeeded: bool
    attempts: int
    interrupted: (
        bool  # the host stopped before the function succeeded or retries ran out
    )
    error: BaseException | None = None


def run_with_retry(
    attempt: Callable[[int], Any],
    policy: RetryPolicy | None,
    stop: threading.Event,
    log: logging.Logger,
    label: str,
) -> RetryOutcome:
    """Call `attempt(retry_count)` until it returns, retries run out, or `stop` is set."""
    retry_count = 0
    while True:
        try:
            attempt(retry_count)
            return RetryOutcome(True, retry_count + 1, interrupted=False)
        except Exception as exc:
            limit = policy.max_retry_count if policy else 0
            exhausted = limit != -1 and retry_count >= limit
            log.error(
                "Executed '%s' (Failed, attempt %d): %s",
                label,
                retry_count + 1,
                exc,
                exc_info=exc,
            )
            if exhausted:
                if policy:
                    log.error("'%s': all %d retries failed", label, limit)
                return RetryOutcome(
                    False, retry_count + 1, interrupted=False, error=exc
                )
            retry_count += 1
            assert policy is not None
            delay = policy.delay(retry_count)
            log.info(
                "'%s': retry %d of %s in %.3gs",
                label,
                retry_count,
                "unlimited" if limit == -1 else limit,
                delay,
            )
            if stop.wait(delay) or stop.is_set():
                return RetryOutcome(False, retry_count, interrupted=True, error=exc)
