"""The Cosmos DB stand-in (devtools/cosmos_server.js) against the real SDK: transactional
batch (atomic, preconditions, limits), partition-scoped queries, and --data-dir
persistence across a SIGKILL and a graceful stop.

Each launcher runs on a free port of its own, so this file needs no local stack.
"""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.cosmos import ContainerProxy, CosmosClient, PartitionKey, exceptions

from devtools.emulators import COSMOS_KEY
from devtools.processes import (
    LOOPBACK,
    REPO_ROOT,
    ManagedProcess,
    StackError,
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
    # A pinned term other than the key is an index lookup, as in Cosmos DB.
    assert (everywhere, read) == ([5], 5)
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


def test_a_cross_partition_query_reads_the_documents_its_pinned_term_matches(
    container: ContainerProxy,
) -> None:
    for i in range(30):
        kind = "totals" if i % 10 == 0 else "line"
        container.create_item({"id": f"d{i}", "pk": f"p{i % 4}", "kind": kind, "n": i})
    container.create_item({"id": "text", "pk": "p0", "kind": "totals", "n": "0"})
    query = "SELECT VALUE c.id FROM c WHERE c.kind = @kind AND c.n < 25"
    kind = [{"name": "@kind", "value": "totals"}]

    found, read = documents_read(
        container, query, parameters=kind, enable_cross_partition_query=True
    )
    # The index holds the 4 totals documents; the rest of the WHERE still applies (and a
    # string never compares with a number).
    assert (sorted(found), read) == (["d0", "d10", "d20"], 4)

    # Writes keep the index: a replaced kind, a deletion, a new document.
    container.replace_item("d10", {"id": "d10", "pk": "p2", "kind": "line", "n": 10})
    container.delete_item("d20", partition_key="p0")
    container.upsert_item({"id": "d5", "pk": "p1", "kind": "totals", "n": 5})
    found, read = documents_read(
        container, query, parameters=kind, enable_cross_partition_query=True
    )
    assert (sorted(found), read) == (["d0", "d5"], 3)
    numbers, read = documents_read(
        container,
        "SELECT VALUE c.id FROM c WHERE c.n = 10",
        enable_cross_partition_query=True,
    )
    assert (numbers, read) == (["d10"], 1)


def test_a_query_for_a_list_of_values_reads_only_their_documents(
    container: ContainerProxy,
) -> None:
    for i in range(40):
        container.create_item({"id": f"d{i}", "pk": f"p{i % 4}", "n": i})
    container.create_item({"id": "text", "pk": "p0", "n": "7"})
    container.create_item({"id": "object", "pk": "p0", "n": {"v": 7}})
    container.scripts.create_user_defined_function(
        {"id": "ARRAY_CONTAINS", "body": "function (values, value) { return true; }"}
    )
    ids = [{"name": "@ids", "value": ["d3", "d31", "d3", "nothing"]}]
    # A repeated name binds its last value, in the engine as in the index lookup.
    rebound = [{"name": "@n", "value": [1]}, {"name": "@n", "value": [2, 3]}]
    everything = [f"d{i}" for i in range(40)] + ["text", "object"]
    cases = [
        # (WHERE, parameters, answer in _rid order as a scan's, documents read)
        ("ARRAY_CONTAINS(@ids, c.id)", ids, ["d3", "d31"], 2),
        # "7" is not 7, and the rest of the WHERE still applies (d7 is in p3).
        ("c.n IN (7, 12, '7') AND c.pk != 'p3'", [], ["d12", "text"], 3),
        ("ARRAY_CONTAINS([5, 6], c.n, true)", [], ["d5", "d6"], 2),
        # An object among the values, or a list that is not all constants, is a scan.
        ("ARRAY_CONTAINS([{'v': 7}, 1], c.n)", [], ["d1", "object"], 42),
        ("c.n IN (1, c.n)", [], everything, 42),
        ("ARRAY_CONTAINS(@n, c.n)", rebound, ["d2", "d3"], 2),
        # The account's own function of that name is not the built-in: a scan.
        ("udf.ARRAY_CONTAINS([1], c.n)", [], everything, 42),
    ]
    for where, parameters, answer, documents in cases:
        found, read = documents_read(
            container,
            f"SELECT VALUE c.id FROM c WHERE {where}",
            parameters=parameters,
            enable_cross_partition_query=True,
        )
        assert (found, read) == (answer, documents), where


def totals_document(i: int, **changes: Any) -> dict[str, Any]:
    doc = {
        "id": f"t{i}",
        "pk": f"p{i % 3}",
        "kind": "totals",
        "day": f"2024-01-{i + 1:02d}",
        "counters": {"units:a": i, "units:b": 2 * i},
        "labels": {"größe": {"naïve ✓": i}, "line\u2028sep": {"😀": 1}},
    }
    return {**doc, **changes}


def projected(doc: dict[str, Any]) -> dict[str, Any]:
    return {"day": doc["day"], "counters": doc["counters"], "labels": doc["labels"]}


def test_answers_show_the_documents_as_they_are_now(container: ContainerProxy) -> None:
    # The launcher reuses the JSON of stored documents (render.js) and no longer copies
    # the rows of an answer: every kind of write shows in the next answer, projections
    # still leave undefined out, and pages cut the same rows.
    docs = {f"t{i}": totals_document(i) for i in range(20)}
    for doc in docs.values():
        container.create_item(doc)
    container.create_item(
        {"id": "line", "pk": "p0", "kind": "line", "day": "2024-01-01"}
    )
    query = (
        "SELECT c.day, c.counters, c.labels, c.missing FROM c "
        "WHERE c.kind = @kind AND c.day >= @from"
    )
    params = [
        {"name": "@kind", "value": "totals"},
        {"name": "@from", "value": "2024-01-01"},
    ]

    def answer() -> list[dict[str, Any]]:
        return list(
            container.query_items(
                query, parameters=params, enable_cross_partition_query=True
            )
        )

    def by_day(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(rows, key=lambda row: row["day"])

    first = answer()
    assert by_day(first) == [projected(d) for d in by_day(list(docs.values()))]
    pages = [
        list(page)
        for page in container.query_items(
            query,
            parameters=params,
            enable_cross_partition_query=True,
            max_item_count=7,
        ).by_page()
    ]
    assert [len(page) for page in pages] == [7, 7, 6]
    assert [row for page in pages for row in page] == first
    arrays = container.query_items(
        'SELECT VALUE [c.day, c.missing, c.counters["units:b"]] FROM c WHERE c.kind = @kind',
        parameters=params[:1],
        enable_cross_partition_query=True,
    )
    # Undefined array elements are dropped, as the stock engine does.
    assert sorted(arrays) == sorted(
        [d["day"], d["counters"]["units:b"]] for d in docs.values()
    )

    docs["t1"] = totals_document(1, counters={"units:a": 100})
    container.replace_item("t1", docs["t1"])
    docs["t2"] = totals_document(2, labels={})
    container.upsert_item(docs["t2"])
    container.patch_item(
        "t3",
        "p0",
        [
            {"op": "incr", "path": "/counters/units:a", "value": 5},
            {"op": "set", "path": "/labels/größe", "value": {"neu": 1}},
        ],
    )
    docs["t3"]["counters"]["units:a"] += 5
    docs["t3"]["labels"]["größe"] = {"neu": 1}
    container.delete_item("t4", partition_key="p1")
    del docs["t4"]
    with pytest.raises(exceptions.CosmosBatchOperationError):
        container.execute_item_batch(
            [
                ("replace", ("t5", totals_document(5, day="2025-01-01"))),
                ("create", (totals_document(8),)),
            ],
            partition_key="p2",
        )

    now = answer()
    assert by_day(now) == [projected(d) for d in by_day(list(docs.values()))]
    # The same rows in the same (_rid) order as a query the equality index cannot serve.
    unindexed = query.replace("c.kind = @kind", "c.kind >= @kind AND c.kind <= @kind")
    assert now == list(
        container.query_items(
            unindexed, parameters=params, enable_cross_partition_query=True
        )
    )
    whole = list(
        container.query_items(
            "SELECT * FROM c WHERE c.kind = @kind",
            parameters=params[:1],
            enable_cross_partition_query=True,
        )
    )
    rids = [doc["_rid"] for doc in whole]
    assert rids == sorted(rids)
    for doc in whole:
        assert doc == container.read_item(doc["id"], doc["pk"])
        assert {k: v for k, v in doc.items() if not k.startswith("_")} == docs[
            doc["id"]
        ]


RENDER_CHECK = r"""
"use strict";
const assert = require("assert");
const { keepStored, isStored, jsonBytes } = require("./devtools/cosmos/render");
const { queryLib } = require("./devtools/cosmos/stock");
require("./devtools/cosmos/query");
const { stripUndefined } = queryLib("helpers");

const same = (value) => {
  const bytes = jsonBytes(value);
  assert.strictEqual(bytes === undefined ? undefined : bytes.toString(), JSON.stringify(value));
};
const stored = JSON.parse(
  '{"id":"x","__proto__":{"a":1},"n":-0,"s":"q\\"\\n\\u2028é😀\\ud800","a":[1,[2,{}],null],"o":{"k":{"v":true}}}'
);
assert(keepStored(stored));
const long = [];
for (let i = 0; i < 3000; i += 1) long.push({ row: i, o: stored.o, s: "é😀".repeat(i % 7) });
const large = JSON.parse(JSON.stringify({ id: "l", xs: long.map(({ row, s }) => ({ row, s })) }));
assert(keepStored(large));
const values = [
  undefined, null, 0, -0, NaN, Infinity, "", "é\u2028😀\ud800", true, () => 1, Symbol("s"),
  stored, stored.o, stored.a, [stored, stored.o.k, undefined, () => 1, , 3],
  { a: undefined, b: () => 1, c: stored.a, "q\"k\u2028": stored, d: new Date(0) },
  { toJSON: () => ({ x: 1 }) }, { v: { toJSON: () => undefined }, w: 1 }, [{ toJSON: () => undefined }],
  Object.assign(Object.create(null), { n: stored.o }), new Map([[1, 2]]), Object(1),
  { Documents: long, _count: long.length }, large, [large, stored, large], { a: large.xs },
];
for (const value of values) same(value);
same(stored); // again, from the cache

// A value holding undefined is not registered, so the query cleanup still looks into it;
// nor is anything deeper than a document's members.
const holey = { id: "h", a: [1, undefined, 2], o: { u: undefined }, k: { d: {} } };
assert(!keepStored(holey));
assert(!isStored(holey) && !isStored(holey.a) && !isStored(holey.o) && isStored(holey.k));
assert(!isStored(holey.k.d) && isStored(stored.o) && !isStored(stored.o.k));
assert.deepStrictEqual(stripUndefined([holey, undefined, stored]), [
  { id: "h", a: [1, 2], o: {}, k: { d: {} } },
  stored,
]);
assert.strictEqual(stripUndefined([stored])[0], stored);
"""


def test_the_launcher_renders_what_json_stringify_renders() -> None:
    subprocess.run(["node", "-e", RENDER_CHECK], cwd=REPO_ROOT, check=True, timeout=60)


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


# --- transactional batch -----------------------------------------------------------------


def test_a_successful_batch_returns_each_operation_s_result(
    container: ContainerProxy,
) -> None:
    old = container.create_item({"id": "old", "pk": "p", "v": 1})
    container.create_item({"id": "gone", "pk": "p"})
    container.create_item({"id": "total", "pk": "p", "sum": 10})

    results = container.execute_item_batch(
        [
            ("create", ({"id": "new", "pk": "p", "v": 1},)),
            # An upsert of an absent document creates it, whatever its if-match says.
            ("upsert", ({"id": "up", "pk": "p", "v": 2},), {"if_match_etag": "stale"}),
            (
                "replace",
                ("old", {"id": "old", "pk": "p", "v": 2}),
                {"if_match_etag": old["_etag"]},
            ),
            ("patch", ("total", [{"op": "incr", "path": "/sum", "value": 5}])),
            ("read", ("new",)),
            ("delete", ("gone",)),
        ],
        partition_key="p",
    )

    assert [r["statusCode"] for r in results] == [201, 201, 200, 200, 200, 204]
    stored = snapshot(container, "p", "new", "up", "old", "total", "gone")
    for result, doc_id in zip(results[:4], ["new", "up", "old", "total"], strict=True):
        assert (
            result["eTag"] == stored[doc_id]["_etag"] == result["resourceBody"]["_etag"]
        )
    assert (
        results[4]["resourceBody"] == stored["new"]
    )  # a later operation sees an earlier one
    assert stored["old"]["v"] == 2 and stored["old"]["_etag"] != old["_etag"]
    assert stored["total"]["sum"] == 15
    assert stored["gone"] is None


def test_a_failing_precondition_leaves_every_document_of_the_batch_unchanged(
    container: ContainerProxy,
) -> None:
    # The projection pattern: replace a contribution with its etag as precondition and
    # incr the aggregate by the delta, so a replayed event changes nothing.
    contribution = container.create_item({"id": "contrib", "pk": "day", "amount": 5})
    container.create_item({"id": "agg", "pk": "day", "total": 5})
    container.create_item({"id": "doomed", "pk": "day"})

    def ops() -> list[Any]:  # fresh each time: the SDK pops the options it reads
        return [
            ("create", ({"id": "fresh", "pk": "day"},)),
            ("delete", ("doomed",)),
            (
                "replace",
                ("contrib", {"id": "contrib", "pk": "day", "amount": 7}),
                {"if_match_etag": contribution["_etag"]},
            ),
            ("patch", ("agg", [{"op": "incr", "path": "/total", "value": 2}])),
        ]

    container.execute_item_batch(ops(), partition_key="day")
    # Replayed: the contribution's etag is stale now (fresh/doomed reset so that the
    # precondition is what fails).
    container.delete_item("fresh", partition_key="day")
    container.create_item({"id": "doomed", "pk": "day"})
    before = snapshot(container, "day", "fresh", "doomed", "contrib", "agg")

    error = batch_error(
        lambda: container.execute_item_batch(ops(), partition_key="day")
    )

    assert error.status_code == 412 and error.error_index == 2
    assert statuses(error) == [424, 424, 412, 424]
    assert snapshot(container, "day", "fresh", "doomed", "contrib", "agg") == before
    assert before["agg"]["total"] == 7


def test_a_conflicting_create_in_the_middle_undoes_the_operations_before_it(
    container: ContainerProxy,
) -> None:
    container.create_item({"id": "taken", "pk": "p", "v": 1})
    container.create_item({"id": "kept", "pk": "p", "v": 1})
    before = snapshot(container, "p", "first", "taken", "kept", "last")

    error = batch_error(
        lambda: container.execute_item_batch(
            [
                ("create", ({"id": "first", "pk": "p"},)),
                ("upsert", ({"id": "kept", "pk": "p", "v": 2},)),
                ("create", ({"id": "taken", "pk": "p", "v": 2},)),
                ("create", ({"id": "last", "pk": "p"},)),
            ],
            partition_key="p",
        )
    )

    assert error.status_code == 409 and error.error_index == 2
    assert statuses(error) == [424, 424, 409, 424]
    assert snapshot(container, "p", "first", "taken", "kept", "last") == before
    # The undone operations are gone from queries too (the partition index is rolled back).
    ids = {
        d["id"] for d in container.query_items("SELECT c.id FROM c", partition_key="p")
    }
    assert ids == {"taken", "kept"}


def test_batch_limits_one_partition_and_at_most_100_operations(
    container: ContainerProxy,
) -> None:
    def creates(n: int, pk: str = "p") -> list[tuple[str, tuple[dict[str, Any]]]]:
        return [("create", ({"id": f"{pk}-{i}", "pk": pk},)) for i in range(n)]

    with pytest.raises(exceptions.CosmosHttpResponseError) as too_many:
        container.execute_item_batch(creates(101), partition_key="p")
    assert too_many.value.status_code == 400
    assert "more operations than what is supported" in str(too_many.value)
    with pytest.raises(exceptions.CosmosHttpResponseError) as empty:
        container.execute_item_batch([], partition_key="p")
    assert empty.value.status_code == 400

    two_keys = creates(2) + creates(1, pk="other")
    error = batch_error(
        lambda: container.execute_item_batch(two_keys, partition_key="p")
    )
    assert error.status_code == 400 and error.error_index == 2
    assert statuses(error) == [424, 424, 400]
    no_key = [("create", ({"id": "keyless"},))]
    assert (
        batch_error(
            lambda: container.execute_item_batch(no_key, partition_key="p")
        ).status_code
        == 400
    )
    # A read of another partition's document is a 404, not a cross-partition read.
    container.create_item({"id": "elsewhere", "pk": "other"})
    read_other = [("read", ("elsewhere",))]
    assert (
        batch_error(
            lambda: container.execute_item_batch(read_other, partition_key="p")
        ).status_code
        == 404
    )
    assert list(
        container.query_items("SELECT VALUE COUNT(1) FROM c", partition_key="p")
    ) == [0]

    assert len(container.execute_item_batch(creates(100), partition_key="p")) == 100
    assert list(
        container.query_items("SELECT VALUE COUNT(1) FROM c", partition_key="p")
    ) == [100]


def test_a_patch_in_a_batch_obeys_the_single_patch_rules(
    container: ContainerProxy,
) -> None:
    container.create_item({"id": "order", "pk": "p", "customerVersion": 1, "n": 0})
    guarded = "FROM c WHERE c.customerVersion < 2"
    incr = [{"op": "incr", "path": "/n", "value": 1}]

    applied = container.execute_item_batch(
        [
            ("patch", ("order", incr), {"filter_predicate": guarded}),
            (
                "patch",
                ("order", [{"op": "set", "path": "/customerVersion", "value": 2}]),
            ),
        ],
        partition_key="p",
    )
    assert (
        applied[1]["resourceBody"] | {"n": 1, "customerVersion": 2}
        == applied[1]["resourceBody"]
    )
    before = snapshot(container, "p", "order", "marker")

    # The predicate is false now (customerVersion is 2): 412, and the create is undone.
    stale = [
        ("create", ({"id": "marker", "pk": "p"},)),
        ("patch", ("order", incr), {"filter_predicate": guarded}),
    ]
    error = batch_error(lambda: container.execute_item_batch(stale, partition_key="p"))
    assert (error.status_code, error.error_index, statuses(error)) == (
        412,
        1,
        [424, 412],
    )

    for refused in (
        [{"op": "set", "path": "/pk", "value": "q"}],
        [{"op": "set", "path": "/id", "value": "x"}],
        [{"op": "set", "path": f"/f{i}", "value": i} for i in range(11)],
    ):
        ops = [
            ("create", ({"id": "marker", "pk": "p"},)),
            ("patch", ("order", refused)),
        ]
        error = batch_error(
            lambda ops=ops: container.execute_item_batch(ops, partition_key="p")
        )
        assert (error.status_code, error.error_index) == (400, 1)
    missing = [("patch", ("nobody", incr))]
    assert (
        batch_error(
            lambda: container.execute_item_batch(missing, partition_key="p")
        ).status_code
        == 404
    )
    assert snapshot(container, "p", "order", "marker") == before


# --- persistence ---------------------------------------------------------------------------


def write_history(cosmos: CosmosClient) -> ContainerProxy:
    """Databases, a container, documents written every way, one failed batch."""
    db = cosmos.create_database("kept")
    container = db.create_container("orders", partition_key=PartitionKey("/pk"))
    db.create_container("empty", partition_key=PartitionKey("/id"))
    for i in range(30):
        container.create_item({"id": f"o{i}", "pk": f"c{i % 3}", "n": i})
    container.upsert_item({"id": "o1", "pk": "c1", "n": 100})
    container.replace_item("o2", {"id": "o2", "pk": "c2", "n": 200})
    container.patch_item("o3", "c0", [{"op": "incr", "path": "/n", "value": 1}])
    container.delete_item("o4", partition_key="c1")
    container.execute_item_batch(
        [("create", ({"id": "b1", "pk": "c0"},)), ("delete", ("o6",))],
        partition_key="c0",
    )
    with pytest.raises(exceptions.CosmosBatchOperationError):
        container.execute_item_batch(
            [
                ("create", ({"id": "never", "pk": "c0"},)),
                ("create", ({"id": "b1", "pk": "c0"},)),
            ],
            partition_key="c0",
        )
    return container


def everything(cosmos: CosmosClient) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for db in cosmos.list_databases():
        database = cosmos.get_database_client(db["id"])
        for coll in database.list_containers():
            container = database.get_container_client(coll["id"])
            docs = container.query_items(
                "SELECT * FROM c", enable_cross_partition_query=True
            )
            out[f"{db['id']}/{coll['id']}"] = {d["id"]: d for d in docs}
    return out


@pytest.mark.parametrize("stop", ["SIGKILL", "graceful stop"])
def test_data_dir_keeps_everything_across_a_restart(tmp_path: Path, stop: str) -> None:
    server = Launcher(tmp_path, data_dir=tmp_path / "data").start()
    try:
        with server.client() as cosmos:
            write_history(cosmos)
            before = everything(cosmos)
        if stop == "SIGKILL":
            server.process.kill()
        else:
            server.process.stop()

        server.start()
        with server.client() as cosmos:
            assert everything(cosmos) == before  # same ids, bodies, _etag, _ts, _rid
            orders = before["kept/orders"]
            assert {"o4", "o6", "never"}.isdisjoint(orders) and "b1" in orders
            assert (orders["o1"]["n"], orders["o2"]["n"], orders["o3"]["n"]) == (
                100,
                200,
                4,
            )
            container = cosmos.get_database_client("kept").get_container_client(
                "orders"
            )
            # Partition-scoped reads and queries work on restored data; new writes get new _rids.
            assert container.read_item("o3", partition_key="c0") == orders["o3"]
            _, read = documents_read(container, "SELECT * FROM c", partition_key="c2")
            assert read == sum(1 for d in orders.values() if d["pk"] == "c2")
            fresh = container.create_item({"id": "after", "pk": "c0"})
            assert fresh["_rid"] not in {d["_rid"] for d in orders.values()}
            after = everything(cosmos)

        # A second restart (the other way) keeps the writes made after the first.
        if stop == "SIGKILL":
            server.process.stop()
        else:
            server.process.kill()
        server.start()
        with server.client() as cosmos:
            assert everything(cosmos) == after
    finally:
        server.process.stop()


def test_a_data_dir_serves_one_launcher_at_a_time(tmp_path: Path) -> None:
    first = Launcher(tmp_path, data_dir=tmp_path / "data").start()
    second = Launcher(tmp_path, data_dir=tmp_path / "data")
    try:
        with pytest.raises(StackError, match="in use by another launcher"):
            second.start()
    finally:
        first.process.stop()
        second.process.stop()


def test_without_a_data_dir_nothing_is_kept(tmp_path: Path) -> None:
    server = Launcher(tmp_path).start()
    try:
        with server.client() as cosmos:
            cosmos.create_database("ephemeral")
        server.process.stop()
        server.start()
        with server.client() as cosmos:
            assert list(cosmos.list_databases()) == []
    finally:
        server.process.stop()
