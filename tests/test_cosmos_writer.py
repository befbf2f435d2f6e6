"""sync.cosmos_writer against the real local Cosmos server: the guarded-write semantics the
projections rely on (and the in-memory store of the property tests imitates)."""

from __future__ import annotations

import os
import threading
import uuid
from decimal import Decimal
from unittest import mock

import pytest
from azure.cosmos import CosmosClient, PartitionKey
from azure.cosmos.exceptions import CosmosResourceNotFoundError

from shared.cosmos import container_specs
from shared.read_model import AGGREGATE_ID
from sync.cosmos_writer import CosmosWriter
from sync.known_documents import KnownDocuments
from sync.writes import Counted, FanOut, Upsert, collapse
from tests.memory_store import MemoryStore


@pytest.fixture(scope="module")
def containers(local_stack):
    """Containers named and partitioned as the app's, in a database of their own: these
    synthetic documents must not leak into the read model other tests check."""
    settings = local_stack.settings
    client = CosmosClient(
        settings["COSMOS_ENDPOINT"],
        credential=settings["COSMOS_KEY"],
        connection_verify=False,
    )
    database = client.create_database_if_not_exists("writer-tests")
    for name in ("orders", "projection-state"):
        spec = container_specs()[name]
        database.create_container_if_not_exists(
            name, partition_key=PartitionKey(spec["partitionKey"])
        )
    return database.get_container_client


def order_write(order_id: str, version: int, status: str, **extra) -> Upsert:
    return Upsert(
        "orders",
        order_id,
        order_id,
        guard="version",
        version=version,
        fields={
            "customerId": extra.get("customer_id", "c1"),
            "status": status,
            "total": Decimal("10.10"),
        },
        on_create={"customer": {"name": "Ada"}, "customerVersion": 1},
        snapshot_of=(
            "projection-state",
            f"test:customer:{extra.get('customer_id', 'c1')}",
            "test",
        ),
        snapshot_guard="customerVersion",
    )


def test_guarded_writes_apply_only_newer_versions(containers):
    writer = CosmosWriter(containers)
    order_id = str(uuid.uuid4())
    writer.execute(order_write(order_id, 1, "placed"))
    assert writer.requests == 2  # snapshot read + create
    writer.execute(order_write(order_id, 3, "shipped"))
    writer.execute(order_write(order_id, 2, "placed"))  # stale: ignored
    writer.execute(order_write(order_id, 3, "shipped"))  # repeat: ignored
    doc = containers("orders").read_item(order_id, partition_key=order_id)
    assert (doc["status"], doc["version"], doc["total"]) == ("shipped", 3, 10.1)
    assert doc["customer"] == {"name": "Ada"}


def test_a_later_version_arriving_first_creates_the_document(containers):
    writer = CosmosWriter(containers)
    order_id = str(uuid.uuid4())
    writer.execute(order_write(order_id, 4, "delivered"))
    writer.execute(order_write(order_id, 1, "placed"))
    doc = containers("orders").read_item(order_id, partition_key=order_id)
    assert (doc["status"], doc["version"]) == ("delivered", 4)


def rename(customer_id: str, version: int, name: str) -> list[Upsert | FanOut]:
    """A customer rename as the order-detail projection plans it: a snapshot for orders
    not seen yet, and a fan-out over the existing ones."""
    return [
        Upsert(
            "projection-state",
            f"test:customer:{customer_id}",
            "test",
            guard="version",
            version=version,
            fields={"projection": "test", "customer": {"name": name}},
        ),
        FanOut(
            "orders",
            "customerId",
            customer_id,
            guard="customerVersion",
            version=version,
            fields={"customer": {"name": name}},
        ),
    ]


def test_fan_out_and_stored_snapshot_make_renames_reach_every_order(containers):
    writer = CosmosWriter(containers)
    customer_id = str(uuid.uuid4())
    first, later = str(uuid.uuid4()), str(uuid.uuid4())
    writer.execute(order_write(first, 1, "placed", customer_id=customer_id))
    # The rename: a snapshot for orders not seen yet, and a fan-out over the existing ones.
    for write in rename(customer_id, 2, "Grace"):
        writer.execute(write)
    writer.execute(rename(customer_id, 1, "Old")[1])  # an older rename never wins
    writer.execute(
        order_write(later, 1, "placed", customer_id=customer_id)
    )  # carries the old name
    for order_id in (first, later):
        doc = containers("orders").read_item(order_id, partition_key=order_id)
        assert (doc["customer"], doc["customerVersion"]) == ({"name": "Grace"}, 2), (
            order_id
        )


def test_memory_store_agrees_with_cosmos(containers):
    """The property tests' in-memory store gives the same documents for the same writes."""
    order_id = str(uuid.uuid4())
    writes = [
        order_write(order_id, 2, "shipped"),
        order_write(order_id, 1, "placed"),
        order_write(order_id, 5, "cancelled"),
        order_write(order_id, 4, "shipped"),
    ]
    writer, memory = CosmosWriter(containers), MemoryStore()
    for write in writes:
        writer.execute(write)
        memory.execute(write)
    doc = containers("orders").read_item(order_id, partition_key=order_id)
    expected = memory.docs[("orders", order_id, order_id)]
    assert {k: v for k, v in doc.items() if not k.startswith("_")} == {
        **expected,
        "total": 10.1,
    }


def test_writer_needs_no_app_settings(containers):
    with mock.patch.dict(os.environ, {}, clear=True):
        CosmosWriter(containers).execute(order_write(str(uuid.uuid4()), 1, "placed"))


@pytest.mark.parametrize(
    ("environment", "scanned"),
    [
        ({}, False),
        ({"REQUESTS_CA_BUNDLE": "", "https_proxy": ""}, False),
        ({"REQUESTS_CA_BUNDLE": "/etc/ssl/corporate.pem"}, True),
        ({"HTTPS_PROXY": "http://proxy:3128"}, True),
        ({"no_proxy": "localhost"}, True),
    ],
)
def test_requests_reads_the_environment_only_when_it_holds_something_to_use(
    environment, scanned
):
    from shared.cosmos import _transport

    with mock.patch.dict(os.environ, environment, clear=True):
        transport = _transport()
    assert transport.session.trust_env is scanned


def test_the_client_keeps_a_connection_for_every_thread_that_may_share_it():
    from shared.cosmos import CONNECTION_POOL_SIZE, _transport
    from sync.cosmos_writer import CONCURRENT_WRITES

    adapter = _transport().session.get_adapter("https://account.documents.azure.com")
    assert adapter.poolmanager.connection_pool_kw["maxsize"] == CONNECTION_POOL_SIZE
    assert CONNECTION_POOL_SIZE >= 32 + 2 * CONCURRENT_WRITES
    assert adapter.max_retries.total is False  # azure-core's policies do the retrying


@pytest.fixture(scope="module")
def counted(containers):
    """The writer-tests database with a contribution container (customer-orders) too."""
    database = containers.__self__  # the DatabaseProxy whose get_container_client it is
    spec = container_specs()["customer-orders"]
    database.create_container_if_not_exists(
        "customer-orders", partition_key=PartitionKey(spec["partitionKey"])
    )
    return containers


def summary(customer_id: str, order_id: str, version: int, total: int) -> Counted:
    return Counted(
        "customer-orders",
        customer_id,
        order_id,
        guard="version",
        version=version,
        fields={"customerId": customer_id, "total": total},
        counts={"orders": 1, "spentCents": total},
    )


def totals(containers, customer_id: str) -> dict:
    doc = containers("customer-orders").read_item(
        AGGREGATE_ID, partition_key=customer_id
    )
    return doc["counters"]


def test_a_partition_written_last_here_needs_no_read_before_its_batch(counted):
    known = KnownDocuments()
    customer_id = str(uuid.uuid4())
    first = CosmosWriter(counted, known)
    first.execute(summary(customer_id, "o1", 1, 100))
    assert first.requests == 2  # the partition read, then the batch
    second = CosmosWriter(counted, known)  # a writer per batch, one process
    second.execute(summary(customer_id, "o2", 1, 50))
    second.execute(summary(customer_id, "o1", 2, 70))
    assert second.requests == 2  # one batch each, no read
    assert totals(counted, customer_id) == {"orders": 2, "spentCents": 120}


def test_threads_of_one_process_take_turns_on_a_partition_instead_of_racing(counted):
    """The threads reading a projection's partitions write the same hot partitions: each
    starts from the previous one's result, so no batch fails and none reads first."""
    known = KnownDocuments()
    customer_id = str(uuid.uuid4())
    CosmosWriter(counted, known).execute(summary(customer_id, "o0", 1, 1))
    writers = [CosmosWriter(counted, known) for _ in range(8)]
    start = threading.Barrier(len(writers))

    def write(n: int) -> None:
        start.wait()
        for k in range(3):
            writers[n].execute(summary(customer_id, f"o{n}-{k}", 1, 10))

    threads = [threading.Thread(target=write, args=(n,)) for n in range(len(writers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [w.requests for w in writers] == [3] * len(writers)  # one batch per write
    assert totals(counted, customer_id) == {"orders": 25, "spentCents": 241}


def test_a_stale_copy_makes_the_batch_fail_whole_then_read_and_plan_again(counted):
    """Another instance wrote the partition meanwhile: etags and create-only operations
    catch it, and nothing is counted twice or lost."""
    here, elsewhere = KnownDocuments(), KnownDocuments()
    customer_id = str(uuid.uuid4())
    CosmosWriter(counted, here).execute(summary(customer_id, "o1", 1, 100))
    CosmosWriter(counted, elsewhere).execute(summary(customer_id, "o2", 1, 10))
    CosmosWriter(counted, elsewhere).execute(summary(customer_id, "o1", 2, 40))
    writer = CosmosWriter(counted, here)
    writer.execute(summary(customer_id, "o3", 1, 1))  # aggregate's etag is stale here
    assert writer.requests == 3  # failed batch, read, batch
    writer = CosmosWriter(counted, here)
    writer.execute(summary(customer_id, "o2", 1, 10))  # exists: its create fails
    writer.execute(summary(customer_id, "o1", 2, 40))  # a repeat: confirmed by a read
    assert totals(counted, customer_id) == {"orders": 3, "spentCents": 51}


def test_a_copy_of_a_deleted_contribution_never_makes_its_write_skipped(counted):
    """A rebuild's clear deletes documents behind this process's back; the aggregate's
    copy may be fresh again while a contribution's copy is not."""
    known = KnownDocuments()
    customer_id = str(uuid.uuid4())
    CosmosWriter(counted, known).execute(summary(customer_id, "o1", 2, 100))
    container = counted("customer-orders")
    for doc_id in ("o1", AGGREGATE_ID):  # the clear
        container.delete_item(doc_id, partition_key=customer_id)
    CosmosWriter(counted, known).execute(summary(customer_id, "o9", 1, 1))
    # The replay: o1's first version, which the stale copy (at version 2) would skip.
    CosmosWriter(counted, known).execute_all(
        [summary(customer_id, "o1", 1, 100), summary(customer_id, "o8", 1, 10)]
    )
    assert totals(counted, customer_id) == {"orders": 3, "spentCents": 111}


def test_an_order_created_before_its_customers_rename_in_one_batch_takes_the_new_name(
    containers,
):
    customer_id, order_id = str(uuid.uuid4()), str(uuid.uuid4())
    writes = collapse(
        [
            order_write(order_id, 1, "placed", customer_id=customer_id),
            *rename(customer_id, 2, "Grace"),
            order_write(order_id, 2, "shipped", customer_id=customer_id),
        ]
    )
    writer = CosmosWriter(containers)
    assert all(error is None for _, error in writer.execute_all(writes))
    doc = containers("orders").read_item(order_id, partition_key=order_id)
    assert (doc["status"], doc["customer"], doc["customerVersion"]) == (
        "shipped",
        {"name": "Grace"},
        2,
    )
    # Snapshot query, one create (the first version is in the batch), the snapshot's
    # patch and create (none was stored), the fan-out's query and no patch.
    assert writer.requests == 5


def test_a_first_version_fan_out_looks_for_nothing(containers):
    writer = CosmosWriter(containers)
    writer.execute(
        FanOut("orders", "customerId", "c1", "customerVersion", 1, {"customer": {}})
    )
    assert writer.requests == 0


def test_known_documents_forget_the_least_recently_used_first():
    known = KnownDocuments(capacity=2)
    known.remember("c", "p", [{"id": "a"}, {"id": "b"}])
    assert known.get("c", "p", "a") == {"id": "a"}  # now b is the oldest
    known.remember("c", "p", [{"id": "x"}])
    assert known.get("c", "p", "b") is None and len(known) == 2
    known.forget("c", "p", ["a"])
    assert known.get("c", "p", "a") is None


def test_collapse_marks_a_write_whose_batch_holds_the_first_version():
    writes = collapse(
        [order_write("o1", 1, "placed"), order_write("o1", 3, "shipped")]
        + [order_write("o2", 2, "shipped"), order_write("o2", 3, "delivered")]
    )
    marked = {w.id: (w.version, w.is_first()) for w in writes}
    assert marked == {"o1": (3, True), "o2": (3, False)}


def test_a_position_advances_only_contiguously(containers):
    def position(sequence: int, after: int) -> Upsert:
        return Upsert(
            "projection-state",
            f"{name}:position:0",
            name,
            guard="sequenceNumber",
            version=sequence,
            requires_at_least=after,
            fields={"projection": name, "kind": "position"},
        )

    def recorded() -> int:
        doc = containers("projection-state").read_item(
            f"{name}:position:0", partition_key=name
        )
        return doc["sequenceNumber"]

    name = f"test-{uuid.uuid4()}"
    writer = CosmosWriter(containers)
    writer.execute(position(5, 10))  # nothing recorded before it: a gap, left as one
    with pytest.raises(CosmosResourceNotFoundError):
        recorded()
    writer.execute(position(9, -1))  # a partition's first batch creates it
    writer.execute(position(20, 15))  # a gap: the position stays
    assert recorded() == 9
    writer.execute(position(14, 9))  # continues from where it stands
    writer.execute(position(12, 8))  # older: ignored
    assert recorded() == 14
