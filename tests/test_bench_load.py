"""The load bench's visibility probes (devtools/bench_load.py) against the Cosmos stand-in:
they report when a document shows a version, and fail loudly when their process dies
rather than leaving the bench waiting for ever."""

from __future__ import annotations

import gc
import time
import uuid
from collections.abc import Iterator

import pytest

from devtools.bench_load import CosmosWatcher, Sample, freeze_long_lived
from devtools.provision import app_settings
from devtools.stack import LocalStack
from shared.cosmos import container
from sync.cosmos_writer import pk_field


@pytest.fixture
def watcher(local_stack: LocalStack) -> Iterator[CosmosWatcher]:
    watching = CosmosWatcher(local_stack.settings)
    try:
        yield watching
    finally:
        watching.close()


@pytest.fixture
def order_id(local_stack: LocalStack) -> Iterator[str]:
    doc_id = f"bench-probe-{uuid.uuid4()}"
    yield doc_id
    with app_settings(local_stack.settings):
        orders = container("orders")
        for item in orders.query_items(
            "SELECT c.id FROM c WHERE c.id = @id",
            parameters=[{"name": "@id", "value": doc_id}],
            enable_cross_partition_query=True,
        ):
            orders.delete_item(item["id"], partition_key=doc_id)


def awaiting(doc_id: str, version: int) -> Sample:
    sample = Sample(level=1, kind="place", scheduled=0.0)
    sample.answered = time.perf_counter()
    sample.probe = (f"/orders/{doc_id}", version)
    return sample


def test_a_probe_ends_when_the_document_shows_the_version(
    local_stack: LocalStack, watcher: CosmosWatcher, order_id: str
) -> None:
    sample = awaiting(order_id, 2)
    done = watcher.watch(sample)
    deadline = time.monotonic() + 30  # the child process imports the SDK first
    while watcher.queries < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert watcher.queries >= 2 and not done.done()  # no such document yet
    with app_settings(local_stack.settings):
        orders = container("orders")
        orders.upsert_item({"id": order_id, pk_field("orders"): order_id, "version": 1})
        time.sleep(0.3)
        assert not done.done()  # version 1 is not the one awaited
        written = time.perf_counter()
        orders.upsert_item({"id": order_id, pk_field("orders"): order_id, "version": 2})
    done.result(timeout=10)
    assert sample.visible is not None and written <= sample.visible
    # Seen within a few probe intervals, timed on the clock the parent shares.
    assert sample.visible - written < 2.0
    assert sample.probes >= 3
    assert watcher.queries >= sample.probes and watcher.failures == 0


def test_waits_fail_when_the_probing_process_dies(
    watcher: CosmosWatcher, order_id: str
) -> None:
    done = watcher.watch(awaiting(order_id, 1))
    watcher.process.kill()
    with pytest.raises(RuntimeError, match="probes' process ended"):
        done.result(timeout=10)
    with pytest.raises(RuntimeError, match="probes' process ended"):
        watcher.watch(awaiting(order_id, 1))


def test_a_level_runs_with_the_objects_alive_at_its_start_out_of_collections() -> None:
    # A full collection of the bench's long-lived objects paused a 100/s level for
    # ~80 ms; after freeze_long_lived collections walk only what the level allocates.
    kept = [[i] for i in range(1000)]  # alive when the level starts
    assert any(o is kept[0] for o in gc.get_objects())
    freeze_long_lived()
    assert not any(o is kept[0] for o in gc.get_objects())
    assert gc.get_freeze_count() >= len(kept)
