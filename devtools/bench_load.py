"""End-to-end freshness under an open-loop load, through the dev host while projections run.

Commands go out on a fixed timetable (rate x seconds, one every 1/rate s), never
waiting for earlier replies: a slow server makes replies late, not sends, so
queueing shows in the figures instead of being hidden by a client that backs off.
The mix is a shop's: mostly orders placed, then shipping, delivery, cancellations,
added lines, stock adjustments, a few renames and price changes.

For every 202, a prober watches the document the command changed (the order,
customer or product document the API's point read returns) until it holds the
command's version; 202 -> visible is when the answer that showed it arrived, so it
includes up to one probe interval. Two ways (`probe`):

- "cosmos" (default): every 50 ms, one query per container reads the versions of
  all the documents still awaited, straight from the read model. The probes then
  add no work to the dev host, whose small pool of worker threads would otherwise
  share commands with a few probe reads per command, and the command latency is
  that of commands while projections run. They run in a child process, so their
  SDK calls never keep the sender's event loop from the GIL;
- "api": `GET /orders/{id}`, `/customers/{id}` or `/products/{id}` with
  `minVersion` (never waiting server-side) through the dev host, first 20 ms after
  the 202, then backing off to every 100 ms: what a polling client sees, at the
  price of that load on the host.

Another loop polls `GET /projections` for the largest lag. The client is aiohttp, lean on
CPU (`client_session`): the bench shares the machine it measures.

Before the first level, `WARM_UP` seconds of load at its rate go unmeasured, so the figures
are those of a running app rather than of its first seconds: the projections' connection
pools fill (a new connection to the local Cosmos DB stand-in costs tens of ms of CPU, as
the SDK turns certificate checks off for a local endpoint and each unverified connection
loads the CA bundle again) and each partition's position gets its first write.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import json
import multiprocessing
import random
import threading
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from devtools.bench_common import (
    CpuPressure,
    batch_log_totals,
    command_times_in_host,
    percentile,
    process_cpu_seconds,
)
from devtools.bench_queries import settle
from devtools.sample_data import ADDRESS

LEVELS = (20, 50, 100)
SECONDS = 12.0
FIRST_PROBE = 0.02
MAX_PROBE_INTERVAL = 0.1
COSMOS_PROBE_INTERVAL = 0.05
GIVE_UP = 30.0  # a command not visible by then counts as never visible
WARM_UP = 3.0
LAG_POLL = 0.5
CUSTOMERS = 20
PRODUCTS = 10

# Share of each command in the mix; one whose target is missing becomes a place-order.
MIX = {
    "place": 0.50,
    "ship": 0.15,
    "deliver": 0.08,
    "cancel": 0.05,
    "add item": 0.07,
    "stock": 0.08,
    "rename": 0.02,
    "price": 0.05,
}


@dataclass
class Sample:
    """One command of the timetable and what became of it (perf_counter seconds)."""

    level: int
    kind: str
    scheduled: float
    sent: float = 0.0
    answered: float | None = None
    status: int | None = None
    probe: tuple[str, int] | None = None  # (path, version) the command leads to
    visible: float | None = None
    probes: int = 0


@dataclass
class LevelResult:
    rate: int
    seconds: float
    started: float
    samples: list[Sample] = field(default_factory=list)
    lag: list[tuple[float, int, float]] = field(default_factory=list)  # t, events, s
    probe: str = "cosmos"
    probe_requests: int = 0
    probe_failures: int = 0
    client_cpu: float = 0.0  # this process's CPU seconds during the level
    cpu_pressure: float | None = None  # share of the level some task waited for a CPU
    process_cpu: dict[str, float] = field(default_factory=dict)  # name -> CPU seconds
    window: float = 0.0  # seconds from the first send until every probe ended
    sync: dict[str, dict[str, int]] = field(default_factory=dict)  # from the host log
    in_host: list[float] = field(default_factory=list)  # ms of each command in the host


class CosmosWatcher:
    """Watches documents in the read model for versions, many per query, from a child
    process: its SDK queries then never hold the GIL the sender's event loop needs, which
    would delay sends and replies and show as command latency of the bench's making."""

    def __init__(self, settings: Mapping[str, str]) -> None:
        context = multiprocessing.get_context("spawn")  # this process runs threads
        wanted_in, self._wanted = context.Pipe(duplex=False)  # (receiving, sending)
        self._seen, seen_out = context.Pipe(duplex=False)
        self._queries = context.Value("q", 0)
        self._failures = context.Value("q", 0)
        self.process = context.Process(
            target=_watch_read_model,
            args=(dict(settings), wanted_in, seen_out, self._queries, self._failures),
            name="bench-cosmos-watcher",
            daemon=True,
        )
        self.process.start()
        wanted_in.close()  # the child's ends, now its own
        seen_out.close()
        self._lock = threading.Lock()
        self._pending: dict[int, tuple[Sample, concurrent.futures.Future]] = {}
        self._ended: RuntimeError | None = None
        self._reader = threading.Thread(
            target=self._read, name="bench-cosmos-watcher-replies", daemon=True
        )
        self._reader.start()

    @property
    def queries(self) -> int:
        return self._queries.value

    @property
    def failures(self) -> int:
        return self._failures.value

    def watch(self, sample: Sample) -> concurrent.futures.Future:
        """Done once the sample's document holds its version (or after GIVE_UP); fails
        if the probing process has ended, rather than leaving the bench waiting."""
        assert sample.probe is not None and sample.answered is not None
        path, version = sample.probe
        _, container_name, doc_id = path.split("/")
        done: concurrent.futures.Future = concurrent.futures.Future()
        with self._lock:
            if self._ended is not None:
                raise self._ended
            self._pending[id(sample)] = (sample, done)
        try:
            self._wanted.send(
                (id(sample), container_name, doc_id, version, sample.answered)
            )
        except OSError:
            self._end()
        return done

    def _read(self) -> None:
        while True:
            try:
                key, visible, probes = self._seen.recv()
            except (EOFError, OSError):
                self._end()
                return
            with self._lock:
                waiting = self._pending.pop(key, None)
            if waiting is None:
                continue  # already failed by _end (a send found the pipe closed)
            sample, done = waiting
            sample.visible, sample.probes = visible, probes
            done.set_result(None)

    def _end(self) -> None:
        """The probing process is gone: every wait still open fails with why."""
        self.process.join(timeout=1)
        with self._lock:
            if self._ended is None:
                self._ended = RuntimeError(
                    "the visibility probes' process ended "
                    f"(exit code {self.process.exitcode}); see its output above"
                )
            pending, self._pending = self._pending, {}
        for _, done in pending.values():
            if not done.done():
                done.set_exception(self._ended)

    def close(self) -> None:
        try:
            self._wanted.send(None)
        except OSError:
            pass  # already gone
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
        self._reader.join(timeout=5)


def _watch_read_model(
    settings: dict[str, str],
    wanted: Connection,
    seen: Connection,
    queries: Synchronized,
    failures: Synchronized,
) -> None:
    """The watcher's child process: every COSMOS_PROBE_INTERVAL, one query per container
    for the versions of every document still awaited; each awaited (key, version) is
    answered with (key, perf_counter when seen or None, probes). perf_counter is the
    system's monotonic clock, so the parent's times and the child's compare."""
    from devtools.provision import app_settings
    from shared.cosmos import container

    # container -> document id -> [key, version, answered, probes]
    awaited: dict[str, dict[str, list[list[Any]]]] = {}
    # A spawned process starts with default filters: verify=False against the
    # self-signed stand-in is intended, and would warn once per probe.
    warnings.filterwarnings("ignore", message="Unverified HTTPS request")
    freeze_long_lived()  # the SDK's modules, left out of every collection
    with app_settings(settings):
        tick = time.perf_counter()
        while True:
            tick += COSMOS_PROBE_INTERVAL
            while wanted.poll(max(0.0, tick - time.perf_counter())):
                message = wanted.recv()
                if message is None:
                    return
                key, name, doc_id, version, answered = message
                awaited.setdefault(name, {}).setdefault(doc_id, []).append(
                    [key, version, answered, 0]
                )
            tick = max(tick, time.perf_counter())
            for name, docs in awaited.items():
                if not docs:
                    continue
                with queries.get_lock():
                    queries.value += 1
                try:
                    versions = {
                        row["id"]: row["version"]
                        for row in container(name).query_items(
                            "SELECT c.id, c.version FROM c "
                            "WHERE ARRAY_CONTAINS(@ids, c.id)",
                            parameters=[{"name": "@ids", "value": list(docs)}],
                            enable_cross_partition_query=True,
                        )
                    }
                except Exception:  # noqa: BLE001 - a failed probe is retried next tick
                    with failures.get_lock():
                        failures.value += 1
                    versions = {}  # seen nothing: waits past GIVE_UP still end
                now = time.perf_counter()
                for doc_id in list(docs):
                    still = []
                    for entry in docs[doc_id]:
                        key, version, answered, probes = entry
                        entry[3] = probes = probes + 1
                        shown = versions.get(doc_id)
                        if shown is not None and shown >= version:
                            seen.send((key, now, probes))
                        elif now - answered >= GIVE_UP:
                            seen.send((key, None, probes))
                        else:
                            still.append(entry)
                    if still:
                        docs[doc_id] = still
                    else:
                        del docs[doc_id]


def freeze_long_lived() -> None:
    """Keeps the load generator's garbage collector from pausing a level.

    A full collection walks every object of this process (the SDKs' modules, what earlier
    sections left): ~80 ms in the middle of a 100/s level, during which no reply was read
    and the sends due left together afterwards, so the figures counted the generator's
    pause as the stack's latency. Called as a level starts: garbage is collected, and what
    is still alive is frozen, left out of every later collection (as function_app.py does
    with what start-up creates), so those walk only what the level allocates."""
    gc.collect()
    gc.freeze()


class Prober:
    """Watches 202s until their documents are visible, and polls the projections' lag,
    on a thread (and, probing the read model, a process) of its own."""

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str],
        mode: str = "cosmos",
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self.base_url = base_url
        self.headers = dict(headers)
        self.mode = mode
        if mode == "cosmos" and settings is None:
            raise ValueError("probing the read model needs the stack's settings")
        self.cosmos = CosmosWatcher(settings or {}) if mode == "cosmos" else None
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="bench-prober", daemon=True
        )
        self.thread.start()
        self.client: aiohttp.ClientSession = self._call(self._open())
        self.status: Counter = Counter()

    async def _open(self) -> aiohttp.ClientSession:
        return client_session(self.headers, connections=64)

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    @property
    def requests(self) -> int:
        """Probe requests so far (queries of the read model, or GETs through the API)."""
        if self.cosmos is not None:
            return self.cosmos.queries
        return sum(self.status.values())

    @property
    def failures(self) -> int:
        """Probes that failed or got an answer other than 200/404."""
        if self.cosmos is not None:
            return self.cosmos.failures
        return sum(n for status, n in self.status.items() if status not in (200, 404))

    def watch(self, sample: Sample) -> concurrent.futures.Future:
        if self.cosmos is not None:
            return self.cosmos.watch(sample)
        return asyncio.run_coroutine_threadsafe(self._watch(sample), self.loop)

    async def _watch(self, sample: Sample) -> None:
        assert sample.probe is not None and sample.answered is not None
        path, version = sample.probe
        pause = FIRST_PROBE
        while time.perf_counter() - sample.answered < GIVE_UP:
            await asyncio.sleep(pause)
            pause = min(pause * 2, MAX_PROBE_INTERVAL)
            sample.probes += 1
            try:
                async with self.client.get(
                    self.base_url + path, params={"minVersion": str(version)}
                ) as response:
                    status = response.status
                    answer = _json_object(await response.read()) or {}
            except (aiohttp.ClientError, TimeoutError):
                self.status["error"] += 1
                continue
            self.status[status] += 1
            if status == 200 and answer.get("version", 0) >= version:
                sample.visible = time.perf_counter()
                return

    def poll_lag(
        self, into: LevelResult, stop: threading.Event
    ) -> concurrent.futures.Future:
        async def loop() -> None:
            while not stop.is_set():
                try:
                    async with self.client.get(
                        self.base_url + "/projections"
                    ) as response:
                        answer = _json_object(await response.read())
                        if response.status == 200 and answer is not None:
                            projections = answer["projections"]
                            into.lag.append(
                                (
                                    time.perf_counter(),
                                    max(p["lagEvents"] for p in projections),
                                    max(p["lagSeconds"] for p in projections),
                                )
                            )
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(LAG_POLL)

        return asyncio.run_coroutine_threadsafe(loop(), self.loop)

    def close(self) -> None:
        if self.cosmos is not None:
            self.cosmos.close()
        self._call(self.client.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


def client_session(
    headers: Mapping[str, str], connections: int
) -> aiohttp.ClientSession:
    """An HTTP client for the load (in a running event loop). aiohttp rather than httpx:
    it spends about a third of httpx's CPU per request, CPU the stack under measurement
    would otherwise share with the bench on a small machine."""
    return aiohttp.ClientSession(
        headers=dict(headers),
        timeout=aiohttp.ClientTimeout(total=30),
        connector=aiohttp.TCPConnector(limit=connections),
    )


class Shop:
    """The client's view of the shop: what exists, so each command has a valid target."""

    def __init__(self, customers: list[str], products: list[str], seed: int = 3):
        self.customers = customers
        self.products = products
        self.placed: list[dict[str, Any]] = []  # {"id", "lines"} free for a command
        self.shipped: list[str] = []
        self.rng = random.Random(seed)

    def next_command(
        self,
    ) -> tuple[str, str, str, dict[str, Any] | None, Callable[[dict], None]]:
        """(kind, method, path, body, on_202) for the next slot of the timetable."""
        rng = self.rng
        kind = rng.choices(list(MIX), list(MIX.values()))[0]
        if kind in ("ship", "cancel", "add item") and not self.placed:
            kind = "place"
        if kind == "deliver" and not self.shipped:
            kind = "place"
        if kind == "place":
            lines = rng.sample(self.products, rng.randint(1, 3))
            body = {
                "customerId": rng.choice(self.customers),
                "items": [
                    {"productId": p, "quantity": rng.randint(1, 3)} for p in lines
                ],
                "shippingAddress": ADDRESS,
            }
            return (
                kind,
                "POST",
                "/orders",
                body,
                lambda r: self.placed.append({"id": r["id"], "lines": set(lines)}),
            )
        if kind in ("ship", "cancel", "add item"):
            # Taken from the pool while the command is in flight: no two commands race
            # for one order (that would be a 409 of the bench's making).
            order = self.placed.pop(rng.randrange(len(self.placed)))
            path = f"/orders/{order['id']}"
            if kind == "ship":
                return (
                    kind,
                    "POST",
                    f"{path}/ship",
                    {"trackingNumber": f"1Z{rng.randint(0, 10**8)}"},
                    lambda r: self.shipped.append(r["id"]),
                )
            if kind == "cancel":
                return kind, "POST", f"{path}/cancel", {"reason": "bench"}, _nothing
            product = rng.choice(self.products)
            order["lines"].add(product)
            return (
                kind,
                "POST",
                f"{path}/items",
                {"productId": product, "quantity": 1},
                lambda r: self.placed.append(order),
            )
        if kind == "deliver":
            order_id = self.shipped.pop(rng.randrange(len(self.shipped)))
            return kind, "POST", f"/orders/{order_id}/deliver", None, _nothing
        if kind == "stock":
            product = rng.choice(self.products)
            return (
                kind,
                "POST",
                f"/products/{product}/stock",
                {"delta": rng.randint(1, 20)},
                _nothing,
            )
        if kind == "rename":
            customer = rng.choice(self.customers)
            return (
                kind,
                "PATCH",
                f"/customers/{customer}",
                {"name": f"Load customer {rng.randint(0, 10**6)}"},
                _nothing,
            )
        product = rng.choice(self.products)
        return (
            kind,
            "PATCH",
            f"/products/{product}",
            {"price": rng.randint(100, 9999) / 100},
            _nothing,
        )


def _json_object(body: bytes) -> dict[str, Any] | None:
    """A response body's JSON object, or None (not JSON, or not an object)."""
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _nothing(_: dict) -> None:
    return None


def probe_path(kind: str, path: str, answer: dict[str, Any]) -> str:
    """The document a command's change shows up in (the API path that reads it)."""
    if kind in ("stock", "price"):
        return "/products/" + path.split("/")[2]
    if kind == "rename":
        return path
    return f"/orders/{answer['id']}"


def setup(http: httpx.Client) -> Shop:
    """Customers and products the load's commands use, created through the API."""
    tag = uuid.uuid4().hex[:6]

    def post(path: str, body: dict[str, Any]) -> str:
        response = http.post(path, json=body)
        if response.status_code != 202:
            raise RuntimeError(f"POST {path}: {response.status_code} {response.text}")
        return response.json()["id"]

    customers = [
        post(
            "/customers",
            {
                "name": f"Load customer {i}",
                "email": f"load{i}-{tag}@example.com",
                "creditLimit": 10**9,
            },
        )
        for i in range(CUSTOMERS)
    ]
    products = [
        post(
            "/products",
            {
                "sku": f"LOAD-{tag}-{i}",
                "name": f"Load part {i}",
                "price": 2.5 + i,
                "stock": 10**8,
            },
        )
        for i in range(PRODUCTS)
    ]
    return Shop(customers, products)


async def _send(
    client: aiohttp.ClientSession,
    base_url: str,
    prober: Prober,
    sample: Sample,
    command: tuple,
    watched: list[concurrent.futures.Future],
) -> None:
    kind, method, path, body, on_202 = command
    sample.sent = time.perf_counter()
    try:
        async with client.request(method, base_url + path, json=body) as response:
            status = response.status
            text = await response.read()  # read whole, so the connection is reused
    except (aiohttp.ClientError, TimeoutError):
        sample.answered, sample.status = time.perf_counter(), 0
        return
    sample.answered, sample.status = time.perf_counter(), status
    if status != 202:
        return
    answer = _json_object(text)
    if answer is None:
        sample.status = 0  # a 202 without its body: counted as an error
        return
    on_202(answer)
    sample.probe = (probe_path(kind, path, answer), answer["version"])
    watched.append(prober.watch(sample))


async def _run_level(
    base_url: str, shop: Shop, prober: Prober, rate: int, seconds: float
) -> LevelResult:
    result = LevelResult(rate, seconds, 0.0)
    watched: list[concurrent.futures.Future] = []
    async with client_session(prober.headers, connections=1000) as client:
        # Open some connections first, so the first sends do not pay for them.
        async def health() -> None:
            async with client.get(base_url + "/health") as response:
                await response.read()

        await asyncio.gather(*(health() for _ in range(10)))
        stop = threading.Event()
        lag = prober.poll_lag(result, stop)
        result.started = start = time.perf_counter() + 0.1
        tasks = []
        for slot in range(int(rate * seconds)):
            at = start + slot / rate
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sample = Sample(rate, "", at)
            command = shop.next_command()
            sample.kind = command[0]
            result.samples.append(sample)
            tasks.append(
                asyncio.create_task(
                    _send(client, base_url, prober, sample, command, watched)
                )
            )
        await asyncio.gather(*tasks)
    for future in watched:
        await asyncio.wrap_future(future)
    stop.set()
    await asyncio.wrap_future(lag)
    return result


def measure(
    base_url: str,
    http: httpx.Client,
    levels: tuple[int, ...] = LEVELS,
    seconds: float = SECONDS,
    host_log: Path | None = None,
    settings: Mapping[str, str] | None = None,
    probe: str = "cosmos",
    processes: Mapping[str, int] | None = None,
) -> list[LevelResult]:
    """Each level in turn on one shop, the projections caught up in between. With the
    dev host's log, also the projections' own counts (events, requests, batches).
    `http` carries the caller's token; probing "cosmos" reads the stack's read model
    with its `settings`. `processes` (name -> pid) get their CPU time per level, as does
    the bench's own probing process."""
    shop = setup(http)
    settle(http)
    headers = {"Authorization": http.headers["Authorization"]}
    prober = Prober(base_url, headers, probe, settings)
    processes = dict(processes or {})
    if prober.cosmos is not None and prober.cosmos.process.pid is not None:
        processes["bench probes"] = prober.cosmos.process.pid
    results = []
    try:
        if levels and WARM_UP > 0:
            freeze_long_lived()
            asyncio.run(_run_level(base_url, shop, prober, levels[0], WARM_UP))
            settle(http)
        for rate in levels:
            requests, failures = prober.requests, prober.failures
            offset = host_log.stat().st_size if host_log else 0
            freeze_long_lived()  # before the clocks start: it collects first
            cpu, pressure = time.process_time(), CpuPressure()
            before = {name: process_cpu_seconds(pid) for name, pid in processes.items()}
            began = time.perf_counter()
            result = asyncio.run(_run_level(base_url, shop, prober, rate, seconds))
            result.window = time.perf_counter() - began
            result.client_cpu = time.process_time() - cpu
            result.cpu_pressure = pressure.share()
            for name, pid in processes.items():
                now, then = process_cpu_seconds(pid), before[name]
                if now is not None and then is not None:
                    result.process_cpu[name] = now - then
            result.probe = probe
            result.probe_requests = prober.requests - requests
            result.probe_failures = prober.failures - failures
            settle(http)
            if host_log:
                with open(host_log, "rb") as log:
                    log.seek(offset)
                    text = log.read().decode(errors="replace")
                result.sync = batch_log_totals(text)
                result.in_host = command_times_in_host(text)
            results.append(result)
    finally:
        prober.close()
    return results


def figures(results: list[LevelResult]) -> dict[str, float]:
    rows: dict[str, float] = {}
    for r in results:
        at = f"@ {r.rate}/s"
        answered = [s for s in r.samples if s.answered is not None]
        latency = [(s.answered - s.sent) * 1000 for s in answered]
        slip = [(s.sent - s.scheduled) * 1000 for s in r.samples]
        fresh = [(s.visible - s.answered) * 1000 for s in answered if s.visible]
        accepted = [s for s in answered if s.status == 202]
        rows[f"load commands sent {at}"] = len(r.samples)
        rows[f"load p50 ms: command {at}"] = round(percentile(latency, 50), 1)
        rows[f"load p99 ms: command {at}"] = round(percentile(latency, 99), 1)
        if r.in_host:
            # The same commands timed by the host itself: a gap to the client's figures
            # is time outside the function (sockets, the event loop, CPU scheduling).
            rows[f"load p50 ms: command inside the dev host {at}"] = round(
                percentile(r.in_host, 50), 1
            )
            rows[f"load p99 ms: command inside the dev host {at}"] = round(
                percentile(r.in_host, 99), 1
            )
        rows[f"load p99 ms: send slip from the timetable {at}"] = round(
            percentile(slip, 99), 1
        )
        rows[f"load non-2xx commands {at}"] = len(answered) - len(accepted)
        rows[f"load p50 ms: 202 -> visible {at}"] = (
            round(percentile(fresh, 50), 1) if fresh else -1
        )
        rows[f"load p99 ms: 202 -> visible {at}"] = (
            round(percentile(fresh, 99), 1) if fresh else -1
        )
        rows[f"load never visible (>{GIVE_UP:.0f} s) {at}"] = len(accepted) - len(fresh)
        # Which projection sets the tail: the order, customer and product documents
        # are written by different ones.
        by_kind: dict[str, list[float]] = {}
        for s in answered:
            if s.visible:
                by_kind.setdefault(s.kind, []).append((s.visible - s.answered) * 1000)
        for kind, times in sorted(by_kind.items()):
            rows[f"load p99 ms: 202 -> visible, {kind} {at}"] = round(
                percentile(times, 99), 1
            )
        rows[f"load max lag events {at}"] = max((e for _, e, _ in r.lag), default=-1)
        rows[f"load max lag s {at}"] = max((s for _, _, s in r.lag), default=-1)
        rows[f"load probe requests/s ({r.probe}) {at}"] = round(
            r.probe_requests / r.seconds, 1
        )
        rows[f"load failed probes {at}"] = r.probe_failures
        rows[f"load CPU % of one core: bench client {at}"] = round(
            100 * r.client_cpu / r.seconds, 1
        )
        for name, cpu in r.process_cpu.items():
            rows[f"load CPU % of one core: {name} {at}"] = round(
                100 * cpu / r.seconds, 1
            )
        if r.cpu_pressure is not None:
            rows[f"load CPU pressure % (a task waited for a CPU) {at}"] = round(
                100 * r.cpu_pressure, 1
            )
        for name, t in sorted(r.sync.items()):
            rows[f"load Cosmos requests/event: {name} {at}"] = round(
                t["requests"] / max(t["events"], 1), 2
            )
            rows[f"load events/batch: {name} {at}"] = round(
                t["events"] / max(t["batches"], 1), 1
            )
    return rows


def status_counts(results: list[LevelResult]) -> dict[int, Counter]:
    """Command answers by status per level (for the notes under the table)."""
    return {
        r.rate: Counter(s.status for s in r.samples if s.status != 202) for r in results
    }
