"""The Cosmos DB stand-in (devtools/cosmos_server.js) against the real SDK:
partition-scoped queries and guarded patches.

Each launcher runs on a free port of its own, so this file needs no local stack.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.cosmos import ContainerProxy, CosmosClient, PartitionKey, exceptions

from devtools.stack import (
    COSMOS_KEY,
    LOOPBACK,
    REPO_ROOT,
    ManagedProcess,
    free_port,
    port_accepts,
)

pytestmark = pytest.mark.filterwarnings("ignore:Unverified HTTPS request")

LAUNCHER = REPO_ROOT / "devtools" / "cosmos_server.js"


class Launcher:
    """One stand-in process on a fixed free port; restartable with the same data dir."""

    def __init__(self, log_dir: Path, data_dir: Path | None = None) -> None:
        self.port = free_port()
        self.endpoint = f"https://{LOOPBACK}:{self.port}/"
        argv = ["node", str(LAUNCHER), "--host", LOOPBACK, "--port", str(self.port)]
        if data_dir is not None:
            argv += ["--data-dir", str(data_dir)]
        self.process = ManagedProcess(
            "cosmos", argv, log_path=log_dir / f"cosmos-{self.port}.log"
        )

    def start(self) -> Launcher:
        self.process.start(append=True)
        self.process.wait_until(
            lambda: port_accepts(self.port), "listening on its port", timeout=30
        )
        return self

    def client(self) -> CosmosClient:
        return CosmosClient(
            self.endpoint, credential=COSMOS_KEY, connection_verify=False
        )


@pytest.fixture(scope="module")
def launcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launcher]:
    server = Launcher(tmp_path_factory.mktemp("cosmos")).start()
    try:
        yield server
    finally:
        server.process.stop()


@pytest.fixture(scope="module")
def client(launcher: Launcher) -> Iterator[CosmosClient]:
    with launcher.client() as cosmos:
        yield cosmos


@pytest.fixture
def container(client: CosmosClient) -> ContainerProxy:
    database = client.create_database_if_not_exists("stand-in")
    return database.create_container(
        f"c-{uuid.uuid4().hex[:8]}", partition_key=PartitionKey("/pk")
    )


def snapshot(container: ContainerProxy, pk: str, *ids: str) -> dict[str, Any]:
    """The stored documents (None when absent), for before/after comparisons."""
    out: dict[str, Any] = {}
    for doc_id in ids:
        try:
            out[doc_id] = container.read_item(doc_id, partition_key=pk)
        except exceptions.CosmosResourceNotFoundError:
            out[doc_id] = None
    return out


def batch_error(run: Callable[[], object]) -> exceptions.CosmosBatchOperationError:
    with pytest.raises(exceptions.CosmosBatchOperationError) as caught:
        run()
    return caught.value


def statuses(error: exceptions.CosmosBatchOperationError) -> list[int]:
    return [op["statusCode"] for op in error.operation_responses]


def documents_read(
    container: ContainerProxy, query: str, **kwargs: Any
) -> tuple[list[Any], int]:
    """A query's results and how many documents the engine read for it (query metrics)."""
    results = list(container.query_items(query, populate_query_metrics=True, **kwargs))
    metrics = container.client_connection.last_response_headers[
        "x-ms-documentdb-query-metrics"
    ]
    match = re.search(r"retrievedDocumentCount=(\d+)", metrics)
    assert match, metrics
    return results, int(match.group(1))


# --- queries and guarded patches -----------------------------------------------------------


def test_a_query_scoped_to_a_partition_reads_only_that_partition(
    container: ContainerProxy,
) -> None:
    for k in range(5):
        for i in range(20):
            container.create_item({"id": f"p{k}-d{i}", "pk": f"p{k}", "n": i})

    by_header, read = documents_read(
        container, "SELECT * FROM c WHERE c.n < 5", partition_key="p3"
    )
    assert read == 20
    assert sorted(d["id"] for d in by_header) == [f"p3-d{i}" for i in range(5)]

    by_where, read = documents_read(
        container,
        "SELECT VALUE c.n FROM c WHERE c.n >= 18 AND c.pk = @pk",
        parameters=[{"name": "@pk", "value": "p1"}],
        enable_cross_partition_query=True,
    )
    assert (sorted(by_where), read) == ([18, 19], 20)

    everywhere, read = documents_read(
        container,
        "SELECT VALUE COUNT(1) FROM c WHERE c.n = 7",
        enable_cross_partition_query=True,
    )
    assert (everywhere, read) == ([5], 100)
    either, read = documents_read(
        container,
        "SELECT VALUE c.id FROM c WHERE c.pk = 'p0' OR c.pk = 'p1'",
        enable_cross_partition_query=True,
    )
    assert (len(either), read) == (40, 100)

    ordered = [
        d["n"]
        for d in container.query_items(
            "SELECT c.n FROM c WHERE c.pk = 'p2' ORDER BY c.n DESC",
            partition_key="p2",
            max_item_count=7,
        )
    ]
    assert ordered == list(range(19, -1, -1))


def test_a_guarded_patch_checks_its_predicate_against_its_document(
    container: ContainerProxy,
) -> None:
    container.create_item({"id": "a", "pk": "p", "customerVersion": 1})
    container.create_item({"id": "b", "pk": "p", "customerVersion": 5})
    ops = [{"op": "set", "path": "/customerVersion", "value": 3}]
    predicate = "FROM c WHERE c.customerVersion < 3"

    assert (
        container.patch_item("a", "p", ops, filter_predicate=predicate)[
            "customerVersion"
        ]
        == 3
    )
    with pytest.raises(exceptions.CosmosAccessConditionFailedError):
        container.patch_item("b", "p", ops, filter_predicate=predicate)
    with pytest.raises(exceptions.CosmosHttpResponseError) as bad:
        container.patch_item("b", "p", ops, filter_predicate="FROM c WHERE (")
    assert bad.value.status_code == 400
    assert container.read_item("b", "p")["customerVersion"] == 5
