"""Helpers the benchmark sections share: percentiles, commands run in-process, scratch databases."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import os
import re
import threading
import time
import uuid
import warnings
from collections import defaultdict
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Self

from azure.core.pipeline.transport import RequestsTransport


def percentile(values: list[float], p: float) -> float:
    """The nearest-rank percentile (of 40 samples, p99 is the slowest one)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


# The runner's line per batch (sync/runner.py), as the dev host logs it.
BATCH_LOG_LINE = re.compile(
    r"\] (?P<projection>[\w-]+): (?P<events>\d+) event\(s\) -> \d+ write\(s\), "
    r"(?P<requests>\d+) Cosmos request\(s\)"
)


# The dev host's line per HTTP request (devtools/devhost/http.py): time inside the host.
REQUEST_LOG_LINE = re.compile(
    r"\] (?P<method>POST|PUT|PATCH|DELETE|GET) (?P<path>\S+) -> (?P<status>\d+) "
    r"in (?P<ms>[\d.]+) ms"
)


def command_times_in_host(text: str) -> list[float]:
    """Milliseconds each command request spent inside the dev host, from its log."""
    return [
        float(m["ms"]) for m in REQUEST_LOG_LINE.finditer(text) if m["method"] != "GET"
    ]


def batch_log_totals(text: str) -> dict[str, dict[str, int]]:
    """Per projection: events, Cosmos requests and batches, summed over the log lines."""
    totals: dict[str, dict[str, int]] = defaultdict(
        lambda: {"events": 0, "requests": 0, "batches": 0}
    )
    for match in BATCH_LOG_LINE.finditer(text):
        t = totals[match["projection"]]
        t["events"] += int(match["events"])
        t["requests"] += int(match["requests"])
        t["batches"] += 1
    return dict(totals)


class CpuPressure:
    """How much of a stretch of time some runnable task waited for a CPU (Linux PSI,
    /proc/pressure/cpu): the share of the machine other work took from the bench.
    None where the kernel does not report it."""

    def __init__(self) -> None:
        self._start = (time.monotonic(), self._total())

    @staticmethod
    def _total() -> int | None:
        try:
            with open("/proc/pressure/cpu") as f:
                some = f.readline().split()
        except OSError:
            return None
        return int(some[-1].partition("=")[2])  # microseconds

    def share(self) -> float | None:
        started, total = self._start
        now = self._total()
        if total is None or now is None:
            return None
        return (now - total) / 1e6 / max(time.monotonic() - started, 1e-9)


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (Linux), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()
    except OSError:
        return None


def child_processes() -> dict[int, list[int]]:
    """Every live process's children, by parent pid (Linux /proc)."""
    children: dict[int, list[int]] = defaultdict(list)
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (theirs := _stat(int(entry.name))):
            children[int(theirs[1])].append(int(entry.name))
    return children


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time so far of a process and its live descendants (the dev
    host's triggers run in worker processes), or None."""
    fields = _stat(pid)
    if fields is None:
        return None
    children = child_processes()
    ticks, stack = 0, [pid]
    while stack:
        current = stack.pop()
        if (mine := fields if current == pid else _stat(current)) is not None:
            ticks += int(mine[11]) + int(mine[12])
        stack += children.get(current, [])
    return ticks / os.sysconf("SC_CLK_TCK")


@functools.cache
def http_functions() -> dict[str, Any]:
    """The app's HTTP entry points by function name, to call a route in this process as
    the host would (the app indexes its blueprints once per process)."""
    from function_app import app

    return {f.get_function_name(): f.get_user_function() for f in app.get_functions()}


def call_route(
    name: str,
    path: str,
    query: Mapping[str, str],
    route_params: Mapping[str, str],
    headers: Mapping[str, str],
) -> Any:
    """Call the HTTP function `name` in this process; its HttpResponse. An `async def`
    function runs on one event loop of this process, as the worker runs it on its own."""
    import azure.functions as func

    answer = http_functions()[name](
        func.HttpRequest(
            "GET",
            f"http://localhost/api{path}",
            params=dict(query),
            route_params=dict(route_params),
            headers=dict(headers),
            body=b"",
        )
    )
    if inspect.iscoroutine(answer):
        return asyncio.run_coroutine_threadsafe(answer, _function_loop()).result()
    return answer


@functools.cache
def _function_loop() -> asyncio.AbstractEventLoop:
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, name="function-loop", daemon=True).start()
    return loop


class InProcessCommands:
    """Runs commands through the real handlers and `execute` on SQLite, publishing to a
    local event log file, as the HTTP functions would; no HTTP and no host in between."""

    def __init__(self, root: Path, partitions: int) -> None:
        from shared.publisher import LocalLogPublisher
        from shared.sql.db import Database, _sqlite_connect
        from shared.sql.migrate import apply_migrations

        root.mkdir(parents=True, exist_ok=True)
        self.db = Database(_sqlite_connect(str(root / "orders.db")), "sqlite")
        apply_migrations(self.db)
        self.publisher = LocalLogPublisher(str(root / "events.db"), partitions)

    def run(self, handler: Any, body: Any, **route: str) -> dict[str, Any] | None:
        """The 202 body, or None when a rule refused the command (no events then)."""
        from commands.functions import run_command as execute
        from shared.errors import ProblemError
        from shared.http import Request

        request = Request("POST", {}, {}, {}, str(uuid.uuid4()), body=body)
        try:
            response = execute(
                request,
                handler.__name__,
                lambda tx, ctx: handler(tx, ctx, body, **route),
                db=self.db,
                events_to=self.publisher,
            )
        except ProblemError:
            return None
        return response.body

    def event_count(self) -> int:
        from shared import outbox

        return outbox.stats(self.db)[1] or 0


class DeadLetterList:
    """Dead letters kept in memory: a benchmark run must end with none."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def put(
        self, projection: str, delivery: Any, error: str, event_id: str | None
    ) -> str:
        self.items.append((projection, error))
        return f"{projection}/{delivery.partition}/{delivery.sequence_number}"


@contextlib.contextmanager
def scratch_database(settings: Mapping[str, str], name: str) -> Iterator[None]:
    """App code in this process against a new Cosmos database `name` of the stack's
    stand-in, containers as declared in topology.json; the database is dropped after."""
    from devtools.provision import app_settings
    from shared import cosmos

    with (
        warnings.catch_warnings(),
        app_settings({**settings, "COSMOS_DATABASE": name}),
    ):
        warnings.filterwarnings("ignore", message="Unverified HTTPS request")
        cosmos.ensure_containers()
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                cosmos.client().delete_database(name)


class TransportCount:
    """Counts the HTTP requests the Cosmos SDK sends while active (any thread)."""

    def __init__(self) -> None:
        self.count = 0
        self._original = RequestsTransport.send
        self._lock = threading.Lock()

    def __enter__(self) -> Self:
        original, counter = self._original, self

        def send(transport: Any, request: Any, **kwargs: Any) -> Any:
            with counter._lock:  # the project's writer sends from a thread pool
                counter.count += 1
            return original(transport, request, **kwargs)

        RequestsTransport.send = send  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        RequestsTransport.send = self._original  # type: ignore[method-assign]
