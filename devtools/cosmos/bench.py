"""Latency of the Cosmos stand-in's query and patch paths at a given container size.

    .venv/bin/python devtools/cosmos/bench.py [--docs 20000] [--partitions 200]
        [--totals 240] [--server devtools/cosmos_server.js] [--restart]

Starts the launcher on a free port (in memory, or with a temporary --data-dir when
--restart is given), loads `--docs` documents spread over `--partitions` partition key
values and `--totals` day-totals documents (a day, 13 counters keyed by id, 6 label maps,
~800 bytes of JSON each), then reports the median latency (ms, as the SDK sees it) of: a
point read, an upsert, a single-partition query (partition_key=), a cross-partition query
matching one document, one for ten ids (ARRAY_CONTAINS), the stats read's query over the
day totals (also per returned document), a guarded patch (patch with a filter predicate)
and a plain patch. With --restart it also stops the launcher gracefully, SIGKILLs a
second start, and reports how long each restart took to accept requests again. The
server's side of the day-totals query alone: devtools/cosmos/query_bench.js.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from azure.cosmos import CosmosClient, PartitionKey

from devtools.emulators import COSMOS_KEY
from devtools.processes import ManagedProcess, free_port, port_accepts
from queries.views import DAILY_TOTALS  # the stats read's own query
from shared.read_model import AGGREGATE, SALES_SHARDS_PER_DAY

warnings.filterwarnings("ignore", message="Unverified HTTPS request")


def start(server: Path, port: int, log: Path, data_dir: Path | None) -> ManagedProcess:
    argv = ["node", str(server), "--host", "127.0.0.1", "--port", str(port)]
    if data_dir is not None:
        argv += ["--data-dir", str(data_dir)]
    proc = ManagedProcess("cosmos", argv, log_path=log)
    proc.start(append=True)
    proc.wait_until(lambda: port_accepts(port), "listening", timeout=60)
    return proc


def day_totals(n: int, partitions: int) -> dict[str, object]:
    """A document shaped like the day totals the stats read returns."""
    return {
        "id": f"totals-{n}",
        "pk": f"p{n % partitions}",
        "kind": AGGREGATE,
        "shards": SALES_SHARDS_PER_DAY,
        "day": (date(2020, 1, 1) + timedelta(days=n)).isoformat(),
        "counters": {f"units:{uuid.uuid4()}": (n * 31 + i) % 1000 for i in range(13)},
        "labels": {f"label{i}": {f"name{(n + i) % 5}": n + i} for i in range(6)},
    }


def median_ms(fn: Callable[[int], object], runs: int) -> float:
    fn(-1)  # warm the connection and any cache
    times = []
    for i in range(runs):
        started = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--partitions", type=int, default=200)
    parser.add_argument("--totals", type=int, default=240)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument(
        "--server", type=Path, default=REPO_ROOT / "devtools" / "cosmos_server.js"
    )
    parser.add_argument("--restart", action="store_true")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="cosmos-bench-"))
    data_dir = tmp / "data" if args.restart else None
    port = free_port()
    endpoint = f"https://127.0.0.1:{port}/"
    proc = start(args.server, port, tmp / "cosmos.log", data_dir)
    try:
        client = CosmosClient(endpoint, credential=COSMOS_KEY, connection_verify=False)
        container = client.create_database_if_not_exists(
            "bench"
        ).create_container_if_not_exists("docs", partition_key=PartitionKey("/pk"))

        def create(n: int) -> None:
            container.create_item(
                {"id": f"d{n}", "pk": f"p{n % args.partitions}", "n": n, "version": 0}
            )

        started = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(create, range(args.docs)))
            list(
                pool.map(
                    lambda n: container.create_item(day_totals(n, args.partitions)),
                    range(args.totals),
                )
            )
        print(
            f"loaded {args.docs} documents and {args.totals} day totals"
            f" in {time.perf_counter() - started:.1f} s"
        )
        totals_params = [
            {"name": "@totals", "value": AGGREGATE},
            {"name": "@shards", "value": SALES_SHARDS_PER_DAY},
            {"name": "@from", "value": "2020-01-01"},
            {"name": "@to", "value": "2099-12-31"},
        ]

        def pick(i: int) -> int:
            return (i * 7919) % args.docs

        results = {
            "point read": median_ms(
                lambda i: container.read_item(
                    f"d{pick(i)}", partition_key=f"p{pick(i) % args.partitions}"
                ),
                args.runs,
            ),
            "upsert": median_ms(
                lambda i: container.upsert_item(
                    {
                        "id": f"d{pick(i)}",
                        "pk": f"p{pick(i) % args.partitions}",
                        "n": pick(i),
                        "version": 0,
                    }
                ),
                args.runs,
            ),
            "single-partition query (partition_key=)": median_ms(
                lambda i: list(
                    container.query_items(
                        "SELECT * FROM c WHERE c.pk = @pk AND c.n = @n",
                        parameters=[
                            {"name": "@pk", "value": f"p{pick(i) % args.partitions}"},
                            {"name": "@n", "value": pick(i)},
                        ],
                        partition_key=f"p{pick(i) % args.partitions}",
                    )
                ),
                args.runs,
            ),
            "cross-partition query, one match": median_ms(
                lambda i: list(
                    container.query_items(
                        "SELECT * FROM c WHERE c.n = @n",
                        parameters=[{"name": "@n", "value": pick(i)}],
                        enable_cross_partition_query=True,
                    )
                ),
                args.runs,
            ),
            "cross-partition query, ARRAY_CONTAINS of 10 ids": median_ms(
                lambda i: list(
                    container.query_items(
                        "SELECT c.id, c.version FROM c WHERE ARRAY_CONTAINS(@ids, c.id)",
                        parameters=[
                            {
                                "name": "@ids",
                                "value": [f"d{pick(i + k)}" for k in range(10)],
                            }
                        ],
                        enable_cross_partition_query=True,
                    )
                ),
                args.runs,
            ),
            f"cross-partition query, {args.totals} day totals": median_ms(
                lambda i: list(
                    container.query_items(
                        DAILY_TOTALS,
                        parameters=totals_params,
                        enable_cross_partition_query=True,
                        max_item_count=1000,
                    )
                ),
                args.runs,
            ),
            "guarded patch (filter predicate)": median_ms(
                lambda i: container.patch_item(
                    f"d{pick(i)}",
                    partition_key=f"p{pick(i) % args.partitions}",
                    patch_operations=[{"op": "incr", "path": "/version", "value": 1}],
                    filter_predicate="FROM c WHERE c.version < 1000000",
                ),
                args.runs,
            ),
            "plain patch": median_ms(
                lambda i: container.patch_item(
                    f"d{pick(i)}",
                    partition_key=f"p{pick(i) % args.partitions}",
                    patch_operations=[{"op": "incr", "path": "/version", "value": 1}],
                ),
                args.runs,
            ),
        }
        for name, ms in results.items():
            print(f"{name:48s} {ms:9.1f} ms")
        if args.totals:
            per_doc = results[f"cross-partition query, {args.totals} day totals"]
            print(
                f"{'  per returned day total':48s} {per_doc * 1000 / args.totals:9.1f} µs"
            )

        if args.restart:
            for how in ("graceful stop", "SIGKILL"):
                if how == "SIGKILL":
                    proc.kill()
                else:
                    proc.stop()
                started = time.perf_counter()
                proc = start(args.server, port, tmp / "cosmos.log", data_dir)
                client = CosmosClient(
                    endpoint, credential=COSMOS_KEY, connection_verify=False
                )
                container = client.get_database_client("bench").get_container_client(
                    "docs"
                )
                container.read_item("d0", partition_key="p0")
                took = time.perf_counter() - started
                count = next(
                    iter(
                        container.query_items(
                            "SELECT VALUE COUNT(1) FROM c",
                            enable_cross_partition_query=True,
                        )
                    )
                )
                ready = [
                    line for line in proc.tail(5).splitlines() if "restored in" in line
                ][-1]
                print(
                    f"restart after {how}: first read answered {took * 1000:.0f} ms after spawn; {count} documents"
                )
                print(f"  {ready.split('data in ')[-1].rstrip(')')}")
    finally:
        proc.stop()
        print(f"launcher log: {tmp / 'cosmos.log'}")


if __name__ == "__main__":
    main()
