"""Faults as features: Cosmos DB's real rules in the stand-in, outages that heal by themselves.

The stack-level tests run on a stack of their own (they kill and freeze its services),
supervised as `make run` supervises: a service that dies is restarted and provisioned
again while the rest keeps serving.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from azure.cosmos.exceptions import CosmosHttpResponseError
from azure.storage.blob import ContainerClient

from devtools.host_process import DevHost
from devtools.provision import app_settings
from devtools.stack import LocalStack
from shared.cosmos import container_specs
from shared.eventlog import LocalEventLog, OutgoingEvent
from sync import order_detail
from sync.catch_up import Gap, catch_up, gaps
from sync.cosmos_writer import immutable_fields, patch_operations
from sync.runner import process
from tests.api import accepted, customer, order, product, wait_for
from tests.memory_store import DeadLetterList, MemoryStore
from tests.test_runner import FailingStore, order_event
from tests.test_sync_stack import assert_converges, burst

pytestmark = pytest.mark.stack
HEAL_SECONDS = 120


# --- Cosmos DB's patch rules, in the stand-in and in the writer ------------------------


@pytest.fixture(scope="module")
def session_cosmos(local_stack):
    return local_stack.read_model()


@pytest.mark.parametrize("path", ["/id", "/customerId", "/customerId/nested"], ids=str)
def test_the_stand_in_refuses_a_patch_of_id_or_the_partition_key(session_cosmos, path):
    target = session_cosmos.get_container_client("customer-orders")
    doc = {"id": str(uuid.uuid4()), "customerId": "c-1", "status": "placed"}
    target.create_item(doc)
    with pytest.raises(CosmosHttpResponseError) as refused:
        target.patch_item(
            doc["id"],
            partition_key="c-1",
            patch_operations=[{"op": "set", "path": path, "value": "c-1"}],
        )
    assert refused.value.status_code == 400
    assert "partition key" in refused.value.message
    stored = target.read_item(doc["id"], partition_key="c-1")
    assert {k: stored[k] for k in doc} == doc


def test_the_stand_in_refuses_more_than_ten_patch_operations(session_cosmos):
    target = session_cosmos.get_container_client("customer-orders")
    doc = {"id": str(uuid.uuid4()), "customerId": "c-2"}
    target.create_item(doc)
    operations = [{"op": "set", "path": f"/f{i}", "value": i} for i in range(11)]
    with pytest.raises(CosmosHttpResponseError) as refused:
        target.patch_item(doc["id"], partition_key="c-2", patch_operations=operations)
    assert refused.value.status_code == 400
    target.patch_item(doc["id"], partition_key="c-2", patch_operations=operations[:10])
    assert target.read_item(doc["id"], partition_key="c-2")["f9"] == 9


@pytest.mark.parametrize("name", sorted(container_specs()))
def test_the_writer_never_patches_id_or_the_partition_key(name):
    immutable = immutable_fields(name)
    fields = {field: "same" for field in immutable} | {"status": "shipped"}
    paths = {op["path"] for op in patch_operations(name, "version", 3, fields)}
    assert paths == {"/status", "/version"}
    assert all(not p.lstrip("/").startswith(tuple(immutable)) for p in paths)


# --- the catch-up pass over the real local event log ------------------------------------


def test_an_outage_on_the_last_retry_is_caught_up_from_the_event_log(tmp_path):
    log = LocalEventLog(tmp_path / "events.db", partition_count=1)
    stored = log.append(
        [OutgoingEvent(order_event(v).to_bytes(), "c1") for v in (1, 2, 3, 4)]
    )
    deliveries = [
        process_delivery(e) for e in stored
    ]  # what the trigger would hand over
    store, dead = MemoryStore(), DeadLetterList()
    run = process(
        order_detail.NAME,
        order_detail.plan,
        deliveries[:1],
        store,
        dead,
        final_attempt=False,
    )
    assert run.unapplied == 0
    # Cosmos DB is down through the last retry of the next batch: kept, not dead-lettered.
    outage = FailingStore(TimeoutError("Cosmos DB unreachable"))
    outage.docs = store.docs
    run = process(
        order_detail.NAME,
        order_detail.plan,
        deliveries[1:3],
        outage,
        dead,
        final_attempt=True,
    )
    assert run.unapplied == 2 and dead.items == []
    # The trigger checkpointed past that batch; a later one applies, the position holds.
    process(
        order_detail.NAME,
        order_detail.plan,
        deliveries[3:],
        store,
        dead,
        final_attempt=False,
    )
    position = store.docs[
        ("projection-state", "order-detail", "order-detail:position:0")
    ]
    assert position["sequenceNumber"] == 0
    # The pass finds the gap once the position has been idle long enough, and fills it.
    tails = {"0": log.tail(0)}
    soon = datetime.fromisoformat(position["appliedAt"]) + timedelta(seconds=5)
    assert gaps(order_detail.NAME, [position], tails, soon, 60) == []
    later = soon + timedelta(seconds=60)
    found = gaps(order_detail.NAME, [position], tails, later, 60)
    assert found == [Gap("0", 0, 3)]
    driven = catch_up(
        order_detail.NAME, order_detail.plan, found, log.read, store, dead
    )
    assert driven == {"0": 3} and position["sequenceNumber"] == 3
    assert store.docs[("orders", "o1", "o1")]["version"] == 4 and dead.items == []


def process_delivery(event):
    from sync.runner import Delivery

    return Delivery(
        event.body, "0", event.sequence_number, event.offset, event.enqueued_time
    )


# --- a stack of their own, killed and frozen ---------------------------------------------


@pytest.fixture(scope="module")
def fault_stack(tmp_path_factory) -> Iterator[LocalStack]:
    stack = LocalStack(tmp_path_factory.mktemp("faults"), fixed_ports=False)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def fault_host(fault_stack) -> DevHost:
    return fault_stack.start_devhost(
        extra_env={"PROJECTION_CATCH_UP_AFTER_SECONDS": "5"}
    )


@pytest.fixture(scope="module")
def api(fault_stack, fault_host) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=fault_host.base_url + "/api",
        timeout=30,
        headers={"Authorization": f"Bearer {fault_stack.token()}"},
    ) as client:
        yield client


@pytest.fixture(scope="module")
def fault_cosmos(fault_stack):
    return fault_stack.read_model()


@pytest.fixture(scope="module")
def fault_sql(fault_stack):
    conn = sqlite3.connect(fault_stack.settings["SQLITE_PATH"], timeout=30)
    yield lambda query, *params: conn.execute(query, params).fetchall()
    conn.close()


def test_queries_answer_503_with_retry_after_while_cosmos_is_down(fault_stack, api):
    c = customer(api)
    fault_stack.service("cosmos").kill()
    try:
        for path in (
            f"/customers/{c['id']}",
            f"/customers/{c['id']}/orders",
            f"/orders/{uuid.uuid4()}",
            "/orders?status=placed",
            "/stats/sales?from=2026-01-01&to=2026-01-07",
            "/projections",
        ):
            started = time.monotonic()
            response = api.get(path)
            assert response.status_code == 503, (path, response.text)
            assert int(response.headers["Retry-After"]) >= 1
            assert response.headers["content-type"].startswith(
                "application/problem+json"
            )
            assert time.monotonic() - started < 10, path
        # Commands only need the write side: still accepted.
        assert (
            api.post(
                "/products",
                json={
                    "sku": f"S-{uuid.uuid4().hex[:8]}",
                    "name": "P",
                    "price": 1,
                    "stock": 1,
                },
            ).status_code
            == 202
        )
    finally:
        assert "cosmos" in fault_stack.heal()


def test_killing_cosmos_mid_burst_heals_with_no_operator_step(
    fault_stack, api, fault_sql, fault_cosmos
):
    rng = random.Random(29)
    customers = [customer(api, credit=100_000) for _ in range(6)]
    products = [
        product(api, price=rng.randint(100, 5000) / 100, stock=500) for _ in range(5)
    ]
    orders: list[str] = []
    with fault_stack.supervised():
        sender = threading.Thread(
            target=burst, args=(api, rng, customers, products, orders, 294)
        )
        sender.start()
        while len(orders) < 20 and sender.is_alive():
            time.sleep(0.01)  # mid-burst
        cosmos = fault_stack.service("cosmos")
        cosmos.kill()
        sender.join()
        deadline = time.monotonic() + 30
        while not cosmos.running and time.monotonic() < deadline:
            time.sleep(0.1)
        assert cosmos.running, "the supervisor did not restart the Cosmos stand-in"
        state = assert_converges(fault_sql, fault_cosmos, timeout=HEAL_SECONDS)
    assert len(orders) > 60 and len(state["orders"]) >= len(orders)
    status = api.get("/projections")
    assert status.status_code == 200
    assert [p["deadLettered"] for p in status.json()["projections"]] == [0, 0, 0, 0]


def one_order_projected(api, fault_sql, fault_cosmos) -> dict:
    """An order of a new customer and product, once every projection shows it."""
    c = customer(api)
    p = product(api, stock=5)
    placed = order(api, c["id"], [(p["id"], 1)])
    assert_converges(fault_sql, fault_cosmos)
    return placed


def test_a_read_model_emptied_while_the_stack_runs_is_rebuilt(
    fault_stack, api, fault_sql, fault_cosmos
):
    placed = one_order_projected(api, fault_sql, fault_cosmos)
    fault_stack.cosmos_client().delete_database("orders")
    fault_stack.provision_interval = 1.0
    try:
        with fault_stack.supervised(interval=0.2):
            assert_converges(fault_sql, fault_cosmos, timeout=HEAL_SECONDS)
    finally:
        fault_stack.provision_interval = 30.0
    assert api.get(f"/orders/{placed['id']}").status_code == 200


def test_sales_totals_of_another_shard_count_are_skipped_then_rebuilt(
    fault_stack, api, fault_sql, fault_cosmos
):
    from devtools.provision import provision
    from shared.read_model import SALES_SHARDS_PER_DAY

    placed = one_order_projected(api, fault_sql, fault_cosmos)
    day = api.get(f"/orders/{placed['id']}").json()["placedAt"][:10]

    def orders_that_day() -> int:
        stats = api.get("/stats/sales", params={"from": day, "to": day}).json()
        return stats["totals"]["orders"]

    before = orders_that_day()
    # A totals document as a read model written with another shard count leaves it.
    sales = fault_stack.cosmos_client().get_database_client("orders")
    old_layout = {
        "id": "totals",
        "dayShard": f"{day}#7",
        "kind": "totals",
        "day": day,
        "counters": {"orders": 5},
        "shards": 2 * SALES_SHARDS_PER_DAY,
    }
    sales.get_container_client("daily-sales").upsert_item(old_layout)
    assert orders_that_day() == before  # never summed with the current layout's
    provision(fault_stack.settings)  # what `make run` does on start
    documents = sales.get_container_client("daily-sales").query_items(
        "SELECT * FROM c WHERE c.dayShard = @pk",
        parameters=[{"name": "@pk", "value": f"{day}#7"}],
        enable_cross_partition_query=True,
    )
    assert list(documents) == []  # rebuilt from the outbox: the stray layout is gone
    assert orders_that_day() == before


def test_dead_letters_are_kept_when_their_container_vanished(fault_stack, api):
    storage = fault_stack.settings["DeadLetterStorage"]
    ContainerClient.from_connection_string(storage, "dead-letters").delete_container()
    log = LocalEventLog(fault_stack.settings["LOCAL_EVENT_LOG_PATH"])
    [poison] = log.append([OutgoingEvent(b"{not json", "poison-key")])
    wanted = f"/{poison.partition}/{poison.sequence_number:020d}.json"
    deadline = time.monotonic() + 30
    letters: list[str] = []
    while len(letters) < 4 and time.monotonic() < deadline:
        time.sleep(0.2)
        try:
            container = ContainerClient.from_connection_string(storage, "dead-letters")
            letters = [n for n in container.list_blob_names() if n.endswith(wanted)]
        except Exception:  # noqa: BLE001 - not created yet
            letters = []
    assert len(letters) == 4, letters
    status = api.get("/projections")
    assert status.status_code == 200
    assert all(p["deadLettered"] >= 1 for p in status.json()["projections"])
    # Still poison: a redrive keeps it (error refreshed) and says so.
    redriven = api.post("/projections/order-detail/redrive")
    assert redriven.status_code == 200, redriven.text
    assert redriven.json()["stillFailing"] >= 1


def test_a_frozen_cosmos_answers_503_within_seconds(fault_stack, api):
    cosmos = fault_stack.service("cosmos")
    os.killpg(cosmos.pid, signal.SIGSTOP)
    try:
        timings = {}
        for path in (f"/orders/{uuid.uuid4()}", "/orders?status=placed"):
            started = time.monotonic()
            response = api.get(path)
            timings[path] = time.monotonic() - started
            assert response.status_code == 503 and "Retry-After" in response.headers
    finally:
        os.killpg(cosmos.pid, signal.SIGCONT)
    # Not a hang (a frozen dependency held requests ~40 s before): the SDK's per-call
    # timeout plus its own endpoint health check bound it to about 12 s here.
    assert max(timings.values()) < 20, timings


def test_a_frozen_storage_account_answers_503_within_seconds(fault_stack, api):
    azurite = fault_stack.service("azurite")
    os.killpg(azurite.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        response = api.get("/projections")
        elapsed = time.monotonic() - started
    finally:
        os.killpg(azurite.pid, signal.SIGCONT)
    assert response.status_code == 503 and "Retry-After" in response.headers
    assert elapsed < 10, f"answered after {elapsed:.1f}s"
    assert api.get("/projections").status_code == 200


# --- on the session stack -------------------------------------------------------------


def test_a_dead_letter_that_applies_now_is_redriven_and_removed(http, local_stack):
    c = customer(http)
    p = product(http, stock=3)
    placed = order(http, c["id"], [(p["id"], 1)])
    shipped = accepted(
        http.post(f"/orders/{placed['id']}/ship", json={"trackingNumber": "T-1"})
    )
    deadline = time.monotonic() + 30
    while http.get(f"/orders/{placed['id']}").json().get("status") != "shipped":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    log = LocalEventLog(local_stack.settings["LOCAL_EVENT_LOG_PATH"])
    shipped_event = next(
        e
        for partition in log.partition_ids
        for e in log.read(partition, None, 100_000)
        if b'"OrderShipped"' in e.body and placed["id"].encode() in e.body
    )
    with app_settings(local_stack.settings):
        from sync.dead_letters import dead_letters
        from sync.runner import Delivery

        store = dead_letters()
        # As if a bug since fixed had refused it once; the live consumer applied it later,
        # so re-applying it is a no-op (version guards), and the dead letter goes.
        assert (
            http.get(f"/orders/{placed['id']}").json()["version"] == shipped["version"]
        )
        name = store.put(
            "order-detail",
            Delivery(
                shipped_event.body,
                shipped_event.partition_id,
                shipped_event.sequence_number,
                shipped_event.offset,
                shipped_event.enqueued_time.replace(tzinfo=UTC),
            ),
            "CosmosHttpResponseError: (BadRequest) a bug since fixed",
        )
    response = http.post("/projections/order-detail/redrive")
    assert response.status_code == 200
    assert response.json()["redriven"] >= 1
    with app_settings(local_stack.settings):
        from sync.dead_letters import dead_letters

        assert name not in dead_letters().names("order-detail")
    assert http.post("/projections/no-such/redrive").status_code == 404


def test_projection_status_never_fails_through_a_rebuild(http, local_stack):
    from sync.rebuild import rebuild

    c = customer(http)
    p = product(http, stock=50)
    for _ in range(5):
        order(http, c["id"], [(p["id"], 1)])
    answers: list[int] = []
    done = threading.Event()

    def poll() -> None:
        with httpx.Client(
            base_url=http.base_url, timeout=30, headers=http.headers
        ) as client:
            while not done.is_set():
                answers.append(client.get("/projections").status_code)
                time.sleep(0.02)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        with app_settings(local_stack.settings):
            for name in (
                "order-detail",
                "customer-view",
                "product-view",
                "sales-stats",
            ):
                rebuild(name)
    finally:
        done.set()
        poller.join()
    assert answers and set(answers) == {200}, sorted(set(answers))
    # Once caught up, no phantom lag and no stale dead-letter count.
    deadline = time.monotonic() + 30
    while True:
        status = http.get("/projections").json()["projections"]
        if all(s["lagEvents"] == 0 for s in status) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert [s["lagEvents"] for s in status] == [0, 0, 0, 0]
    assert [s["deadLettered"] for s in status] == [0, 0, 0, 0]
    assert all(s["lagSeconds"] == 0 for s in status)


def test_a_first_batch_left_unapplied_is_a_gap_from_the_partitions_start(tmp_path):
    log = LocalEventLog(tmp_path / "events.db", partition_count=1)
    stored = log.append(
        [OutgoingEvent(order_event(v).to_bytes(), "c1") for v in (1, 2, 3, 4)]
    )
    deliveries = [process_delivery(e) for e in stored]
    store, dead = MemoryStore(), DeadLetterList()
    outage = FailingStore(TimeoutError("Cosmos DB unreachable"))
    outage.docs = store.docs
    run = process(
        order_detail.NAME,
        order_detail.plan,
        deliveries[:2],
        outage,
        dead,
        final_attempt=True,
    )
    assert run.unapplied == 2
    # The next batch applies, but may not create the position past the unapplied start.
    process(
        order_detail.NAME,
        order_detail.plan,
        deliveries[2:],
        store,
        dead,
        final_attempt=False,
    )
    assert (
        "projection-state",
        "order-detail",
        "order-detail:position:0",
    ) not in store.docs
    tails = {"0": log.tail(0)}
    later = tails["0"][1] + timedelta(seconds=120)
    found = gaps(order_detail.NAME, [], tails, later, 60)
    assert found == [Gap("0", -1, 3)]
    assert catch_up(
        order_detail.NAME, order_detail.plan, found, log.read, store, dead
    ) == {"0": 4}
    position = store.docs[
        ("projection-state", "order-detail", "order-detail:position:0")
    ]
    assert position["sequenceNumber"] == 3 and dead.items == []


def test_a_rebuild_corrects_totals_a_live_batch_raced(http, local_stack):
    from sync.rebuild import reconcile

    c = customer(http)
    p = product(http, stock=9)
    placed = order(http, c["id"], [(p["id"], 2)])
    wait_for(http, f"/orders/{placed['id']}", placed["version"])
    deadline = time.monotonic() + 30
    # The customer view has its own consumer group: it may not hold the customer yet.
    while http.get(f"/customers/{c['id']}").json().get("orderCount") != 1:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    totals_container = local_stack.read_model().get_container_client("customer-orders")
    totals = totals_container.read_item("totals", partition_key=c["id"])
    totals["counters"]["orders"] = 5  # what a delete racing a live batch can leave
    totals_container.replace_item("totals", totals)
    with app_settings(local_stack.settings):
        assert reconcile("customer-view") >= 1
    assert http.get(f"/customers/{c['id']}").json()["orderCount"] == 1
