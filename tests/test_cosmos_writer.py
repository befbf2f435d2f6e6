"""sync.cosmos_writer against the real local Cosmos server: the guarded-write semantics the
projections rely on (and the in-memory store of the property tests imitates)."""

from __future__ import annotations

import os
import uuid
from decimal import Decimal
from unittest import mock

import pytest
from azure.cosmos import CosmosClient, PartitionKey

from shared.cosmos import container_specs
from sync.cosmos_writer import CosmosWriter
from sync.writes import FanOut, Upsert
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


def test_fan_out_and_stored_snapshot_make_renames_reach_every_order(containers):
    writer = CosmosWriter(containers)
    customer_id = str(uuid.uuid4())
    first, later = str(uuid.uuid4()), str(uuid.uuid4())
    writer.execute(order_write(first, 1, "placed", customer_id=customer_id))
    # The rename: a snapshot for orders not seen yet, and a fan-out over the existing ones.
    writer.execute(
        Upsert(
            "projection-state",
            f"test:customer:{customer_id}",
            "test",
            guard="version",
            version=2,
            fields={"projection": "test", "customer": {"name": "Grace"}},
        )
    )
    writer.execute(
        FanOut(
            "orders",
            "customerId",
            customer_id,
            guard="customerVersion",
            version=2,
            fields={"customer": {"name": "Grace"}},
        )
    )
    writer.execute(
        FanOut(
            "orders",
            "customerId",
            customer_id,
            guard="customerVersion",
            version=1,
            fields={"customer": {"name": "Old"}},
        )
    )  # an older rename never wins
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
