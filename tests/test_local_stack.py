"""The local stack itself: Azurite, the Cosmos launcher's fixes and keep-alive, supervision."""

from __future__ import annotations

import http.client
import json
import logging
import os
import socket
import ssl
import sys
import textwrap
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from azure.core import MatchConditions
from azure.cosmos import (
    ContainerProxy,
    CosmosClient,
    DatabaseProxy,
    PartitionKey,
    exceptions,
)
from azure.storage.blob import BlobServiceClient

from devtools.bench_common import child_processes
from devtools.devhost.workers import NICE
from devtools.emulators import COSMOS_KEY
from devtools.host_process import HOST_STATUS_PATH, DevHost
from devtools.processes import ManagedProcess, StackError, free_port, port_accepts
from devtools.stack import LocalStack, StackPorts

pytestmark = pytest.mark.filterwarnings("ignore:Unverified HTTPS request")


@pytest.fixture(scope="module")
def cosmos(local_stack: LocalStack) -> Iterator[CosmosClient]:
    with CosmosClient(
        local_stack.cosmos_endpoint, credential=COSMOS_KEY, connection_verify=False
    ) as client:
        yield client


@pytest.fixture(scope="module")
def database(cosmos: CosmosClient) -> DatabaseProxy:
    return cosmos.create_database_if_not_exists("stack-test")


@pytest.fixture(scope="module")
def container(database: DatabaseProxy) -> ContainerProxy:
    return database.create_container_if_not_exists(
        "items", partition_key=PartitionKey("/pk")
    )


# --- settings and Azurite ----------------------------------------------------------------


def test_settings_point_at_the_started_services(local_stack: LocalStack) -> None:
    s = local_stack.settings
    p = local_stack.ports
    assert s["AzureWebJobsStorage"] == s["DeadLetterStorage"]
    assert "UseDevelopmentStorage" not in s["AzureWebJobsStorage"]
    for part in (
        "AccountName=devstoreaccount1",
        f"BlobEndpoint=http://127.0.0.1:{p.blob}/devstoreaccount1",
        f"QueueEndpoint=http://127.0.0.1:{p.queue}/devstoreaccount1",
        f"TableEndpoint=http://127.0.0.1:{p.table}/devstoreaccount1",
    ):
        assert part in s["AzureWebJobsStorage"]
    assert s["COSMOS_ENDPOINT"] == f"https://127.0.0.1:{p.cosmos}/"
    assert s["COSMOS_KEY"] == COSMOS_KEY
    assert s["COSMOS_VERIFY_TLS"] == "false"
    assert s["EVENT_TRANSPORT"] == "local"
    assert s["EVENTHUB_NAME"] == "domain-events"
    assert s["FUNCTIONS_WORKER_RUNTIME"] == "python"
    assert Path(s["SQLITE_PATH"]) == local_stack.state_dir / "orders.db"
    assert Path(s["LOCAL_EVENT_LOG_PATH"]) == local_stack.state_dir / "events.db"
    for port in (p.blob, p.queue, p.table, p.cosmos):
        assert port_accepts(port)


def test_azurite_blob_round_trip(local_stack: LocalStack) -> None:
    service = BlobServiceClient.from_connection_string(
        local_stack.settings["AzureWebJobsStorage"]
    )
    name = f"t{uuid.uuid4().hex[:12]}"
    box = service.create_container(name)
    box.upload_blob("a/b.json", b'{"hello": "world"}')
    assert box.download_blob("a/b.json").readall() == b'{"hello": "world"}'
    assert [b.name for b in box.list_blobs(name_starts_with="a/")] == ["a/b.json"]
    assert name in [c.name for c in service.list_containers()]


# --- Cosmos launcher -------------------------------------------------------------------


def test_cosmos_crud_and_query(container: ContainerProxy) -> None:
    pk = f"p-{uuid.uuid4().hex[:8]}"
    for i in range(3):
        container.upsert_item({"id": f"{pk}-{i}", "pk": pk, "n": i})
    container.upsert_item({"id": f"{pk}-0", "pk": pk, "n": 10})  # replace via upsert

    doc = container.read_item(f"{pk}-0", partition_key=pk)
    assert doc["n"] == 10 and doc["_etag"]

    rows = list(
        container.query_items(
            "SELECT c.id, c.n FROM c WHERE c.pk = @pk AND c.n >= @min ORDER BY c.n DESC",
            parameters=[{"name": "@pk", "value": pk}, {"name": "@min", "value": 1}],
            partition_key=pk,
        )
    )
    assert [r["n"] for r in rows] == [10, 2, 1]

    container.delete_item(f"{pk}-1", partition_key=pk)
    with pytest.raises(exceptions.CosmosResourceNotFoundError):
        container.read_item(f"{pk}-1", partition_key=pk)


def _raw_https(port: int) -> http.client.HTTPSConnection:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)


def test_cosmos_keeps_connections_alive(local_stack: LocalStack) -> None:
    conn = _raw_https(local_stack.ports.cosmos)
    try:
        conn.request("GET", "/dbs")
        first = conn.getresponse()
        first.read()
        assert first.status == 200
        assert first.getheader("connection") == "keep-alive"
        sock = conn.sock
        conn.request("GET", "/dbs")
        second = conn.getresponse()
        second.read()
        assert second.status == 200
        assert conn.sock is sock  # http.client reopens a socket the server closed
    finally:
        conn.close()


def test_cosmos_sdk_reuses_one_connection(
    cosmos: CosmosClient, container: ContainerProxy, caplog: pytest.LogCaptureFixture
) -> None:
    container.upsert_item({"id": "ka", "pk": "ka"})
    container.read_item("ka", partition_key="ka")  # warm the pool
    caplog.set_level(logging.DEBUG, logger="urllib3.connectionpool")
    for _ in range(20):
        container.read_item("ka", partition_key="ka")
    opened = [
        r
        for r in caplog.records
        if r.name == "urllib3.connectionpool"
        and ("Starting new" in r.getMessage() or "Resetting dropped" in r.getMessage())
    ]
    assert opened == []


PATCH = [{"op": "set", "path": "/n", "value": 1}]
Operation = Callable[[CosmosClient, DatabaseProxy, ContainerProxy], object]
# Each answered 500 or an empty-bodied 404 from the stock server; Cosmos says 404 NotFound.
NOT_FOUND: dict[str, Operation] = {
    "read missing document": lambda c, d, co: co.read_item("nope", partition_key="x"),
    "read with wrong partition key": lambda c, d, co: co.read_item(
        "ka", partition_key="x"
    ),
    "replace missing document": lambda c, d, co: co.replace_item(
        "nope", {"id": "nope", "pk": "x"}
    ),
    "patch missing document": lambda c, d, co: co.patch_item("nope", "x", PATCH),
    "delete missing document": lambda c, d, co: co.delete_item(
        "nope", partition_key="x"
    ),
    "read missing database": lambda c, d, co: c.get_database_client("no-db").read(),
    "read missing container": lambda c, d, co: d.get_container_client("no-coll").read(),
    "read document in missing container": lambda c, d, co: d.get_container_client(
        "no-coll"
    ).read_item("x", partition_key="x"),
    "read document in missing database": lambda c, d, co: (
        c.get_database_client("no-db")
        .get_container_client("no-coll")
        .read_item("x", partition_key="x")
    ),
    "query missing container": lambda c, d, co: list(
        d.get_container_client("no-coll").query_items(
            "SELECT * FROM c", enable_cross_partition_query=True
        )
    ),
    "upsert into missing container": lambda c, d, co: d.get_container_client(
        "no-coll"
    ).upsert_item({"id": "x", "pk": "x"}),
}


@pytest.mark.parametrize("case", list(NOT_FOUND))
def test_cosmos_missing_resources_are_404_not_found(
    case: str, cosmos: CosmosClient, database: DatabaseProxy, container: ContainerProxy
) -> None:
    container.upsert_item({"id": "ka", "pk": "ka"})
    with pytest.raises(exceptions.CosmosResourceNotFoundError) as caught:
        NOT_FOUND[case](cosmos, database, container)
    assert caught.value.status_code == 404
    assert "NotFound" in str(caught.value)  # the Cosmos error code in the body


def test_cosmos_nested_partition_key_read(database: DatabaseProxy) -> None:
    nested = database.create_container_if_not_exists(
        "nested", partition_key=PartitionKey("/customer/id")
    )
    nested.upsert_item({"id": "o1", "customer": {"id": "c1"}})
    assert nested.read_item("o1", partition_key="c1")["customer"] == {"id": "c1"}
    with pytest.raises(exceptions.CosmosResourceNotFoundError):
        nested.read_item("o1", partition_key="c2")


def test_cosmos_conflicts_carry_the_conflict_code(
    cosmos: CosmosClient, container: ContainerProxy
) -> None:
    container.upsert_item({"id": "dup", "pk": "dup"})
    with pytest.raises(exceptions.CosmosResourceExistsError) as caught:
        container.create_item({"id": "dup", "pk": "dup"})
    assert "Conflict" in str(caught.value)
    with pytest.raises(exceptions.CosmosResourceExistsError) as caught:
        cosmos.create_database("stack-test")
    assert "Conflict" in str(caught.value)


def test_cosmos_etag_precondition(container: ContainerProxy) -> None:
    doc = container.upsert_item({"id": "etag", "pk": "etag", "n": 1})
    unchanged = MatchConditions.IfNotModified
    container.replace_item(
        "etag", {**doc, "n": 2}, etag=doc["_etag"], match_condition=unchanged
    )
    with pytest.raises(exceptions.CosmosAccessConditionFailedError):
        container.replace_item(
            "etag", {**doc, "n": 3}, etag=doc["_etag"], match_condition=unchanged
        )


def test_cosmos_patch_filter_predicate_is_case_sensitive(
    container: ContainerProxy,
) -> None:
    # The stock server lower-cased the predicate, so camelCase properties were undefined.
    container.upsert_item({"id": "guarded", "pk": "guarded", "customerVersion": 1})
    patch = [{"op": "set", "path": "/customerVersion", "value": 2}]
    container.patch_item(
        "guarded",
        partition_key="guarded",
        patch_operations=patch,
        filter_predicate="FROM c WHERE c.customerVersion < 2",
    )
    with pytest.raises(exceptions.CosmosAccessConditionFailedError):
        container.patch_item(
            "guarded",
            partition_key="guarded",
            patch_operations=patch,
            filter_predicate="FROM c WHERE NOT IS_DEFINED(c.customerVersion) OR c.customerVersion < 2",
        )
    assert (
        container.read_item("guarded", partition_key="guarded")["customerVersion"] == 2
    )


# --- supervision -------------------------------------------------------------------------

STAND_IN_HOST = """
import argparse, json, os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

parser = argparse.ArgumentParser()
parser.add_argument("--host")
parser.add_argument("--port", type=int)
parser.add_argument("--functions", default="all")
args = parser.parse_args()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({
            "pid": os.getpid(),
            "cosmos": os.environ.get("COSMOS_ENDPOINT"),
            "functions": args.functions,
        }).encode()
        self.send_response(200 if self.path == "/admin/host/status" else 404)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


print(f"stand-in host up ({args.functions})", flush=True)
ThreadingHTTPServer((args.host, args.port), Handler).serve_forever()
"""


def _status(base_url: str) -> dict[str, object]:
    return _status_at(base_url + HOST_STATUS_PATH)


def _status_at(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _stand_in(directory: Path) -> dict[str, str]:
    """A stand-in host module, so the supervisor is tested apart from the real dev host."""
    (directory / "stand_in_host.py").write_text(textwrap.dedent(STAND_IN_HOST))
    return {"PYTHONPATH": str(directory)}


def _pids(host: DevHost) -> list[int]:
    return [int(_status_at(host.status_url(c))["pid"]) for c in host.children]  # type: ignore[call-overload]


def test_devhost_supervisor_kill_and_restart_on_same_port(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    port = free_port()
    host = local_stack.start_devhost(port, _stand_in(tmp_path), module="stand_in_host")
    try:
        first = _status(host.base_url)
        assert first["cosmos"] == local_stack.settings["COSMOS_ENDPOINT"]
        # HTTP functions on the host's port, the triggers in a process of their own.
        assert first["functions"] == "http" and first["pid"] == host.pid
        assert host.triggers is not None
        assert _status_at(host.status_url(host.triggers))["functions"] == "triggers"
        first_pids = _pids(host)
        assert len(set(first_pids)) == 2
        host.kill()
        assert not host.running and not port_accepts(port)
        assert all(_gone(pid) for pid in first_pids)
        host.start()
        second_pids = _pids(host)
        assert not set(second_pids) & set(first_pids)
        host.restart()
        assert not set(_pids(host)) & set(first_pids + second_pids)
        log = host.tail(100)  # one log for both children, across restarts
        assert log.count("stand-in host up (http)") == 3
        assert log.count("stand-in host up (triggers)") == 3
        triggers_port = host.triggers_port
    finally:
        host.stop()
    assert not host.running and not port_accepts(port)
    assert triggers_port is not None and not port_accepts(triggers_port)


def test_heal_restarts_only_the_dev_host_child_that_died(tmp_path: Path) -> None:
    # A stack of its own: heal() acts on every dev host of its stack.
    with LocalStack(tmp_path, fixed_ports=False, provision=False) as stack:
        host = stack.start_devhost(
            free_port(), _stand_in(tmp_path), module="stand_in_host"
        )
        http_pid, triggers_pid = _pids(host)
        assert host.triggers is not None
        host.triggers.kill()
        assert not host.running and host.pid == http_pid
        assert stack.heal() == ["host-triggers"]
        assert host.running and _pids(host)[0] == http_pid
        assert _pids(host)[1] != triggers_pid
        host.http.kill()
        assert stack.heal() == ["host-http"]
        assert host.running and host.pid != http_pid
        assert stack.heal() == []


def test_devhost_in_one_process_on_request(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    port = free_port()
    host = local_stack.start_devhost(
        port, _stand_in(tmp_path), module="stand_in_host", split=False
    )
    try:
        assert host.children == [host.http] and host.triggers is None
        assert _status(host.base_url)["functions"] == "all"
        host.kill()
        assert not host.running
        host.start()
        assert host.running and host.tail().count("stand-in host up (all)") == 2
    finally:
        host.stop()


def test_stop_leaves_no_process_and_frees_ports(tmp_path: Path) -> None:
    stack = LocalStack(tmp_path, fixed_ports=False, provision=False)
    with stack:
        pids = [p.pid for p in stack.processes]
        assert len(pids) == 2 and all(p is not None and not _gone(p) for p in pids)
    assert all(_gone(p) for p in pids if p is not None)
    ports = stack.ports
    assert not any(
        port_accepts(p) for p in (ports.blob, ports.queue, ports.table, ports.cosmos)
    )
    assert (tmp_path / "azurite.log").read_text() and (
        tmp_path / "cosmos.log"
    ).read_text()


def test_fixed_port_taken_fails_clearly(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        blob, queue, table = (free_port() for _ in range(3))
        stack = LocalStack(
            tmp_path,
            ports=StackPorts(blob, queue, table, cosmos=taken),
            provision=False,
        )
        with pytest.raises(StackError, match=rf"{taken} \(cosmos\)"):
            stack.start()
    assert stack.processes == []


def test_process_that_dies_at_start_reports_its_log(tmp_path: Path) -> None:
    proc = ManagedProcess(
        "boom",
        [sys.executable, "-c", "print('bad config: XYZ'); raise SystemExit(3)"],
        log_path=tmp_path / "boom.log",
    )
    proc.start()
    started = time.monotonic()
    with pytest.raises(StackError, match=r"(?s)exited with code 3.*bad config: XYZ"):
        proc.wait_until(lambda: False, "ready", timeout=30)
    assert time.monotonic() - started < 10
    proc.stop()


def _devhost_runnable() -> bool:
    root = Path(__file__).resolve().parent.parent / "devtools"
    return (root / "devhost.py").exists() or (root / "devhost" / "__main__.py").exists()


@pytest.mark.skipif(not _devhost_runnable(), reason="devtools.devhost not written yet")
def test_real_devhost_answers_status(devhost: DevHost, http: httpx.Client) -> None:
    assert _status(devhost.base_url)
    assert str(http.base_url).rstrip("/") == devhost.base_url + "/api"


def test_real_devhost_runs_projections_outside_the_http_process(
    devhost: DevHost, http: httpx.Client
) -> None:
    assert devhost.triggers is not None
    status = devhost.status_url(devhost.triggers)
    assert _status(devhost.base_url)["functions"] == "http"
    assert _status_at(status)["functions"] == "triggers"
    # The triggers' process serves no API; the HTTP one runs no listener.
    api = status.replace(HOST_STATUS_PATH, "/api/health")
    assert httpx.get(api).status_code == 404
    name = f"Split {uuid.uuid4().hex[:8]}"
    body = {"name": name, "email": f"{uuid.uuid4().hex[:8]}@example.com"}
    created = http.post("/customers", json=body | {"creditLimit": 10})
    assert created.status_code == 202, created.text
    deadline = time.monotonic() + 30
    projected = "Functions.customer_view_projection' (Succeeded"
    while projected not in devhost.tail(400):
        assert time.monotonic() < deadline, "the customer was never projected"
        time.sleep(0.2)
    lines = devhost.log_path.read_text(errors="replace").splitlines()
    assert any(" http [host] POST /api/customers -> 202" in line for line in lines)
    # Listener start-up lines and trigger invocations, never from the HTTP process:
    # each Event Hub function's from a worker of its own, the timers' from theirs.
    projections = [
        f"{p}_projection"
        for p in ("order_detail", "customer_view", "product_view", "sales_stats")
    ]
    triggered = [
        "Event Hub listener '",
        "Timer '",
        "Functions.outbox_relay'",
        *(f"Functions.{p}'" for p in projections),
    ]
    trigger_lines = [line for line in lines if any(x in line for x in triggered)]
    assert trigger_lines
    for line in trigger_lines:
        mine = next((p for p in projections if f"{p}'" in line), "timers")
        assert f" triggers/{mine} [host] " in line, line


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_real_devhost_gives_the_http_functions_the_cpu_first(
    devhost: DevHost,
) -> None:
    assert devhost.triggers is not None
    http_pid, triggers_pid = devhost.http.pid, devhost.triggers.pid
    assert http_pid and triggers_pid
    workers = child_processes().get(triggers_pid, [])
    assert len(workers) == 5  # one per Event Hub function, one for the timers
    http_nice = os.getpriority(os.PRIO_PROCESS, http_pid)
    for pid in [triggers_pid, *workers]:
        assert os.getpriority(os.PRIO_PROCESS, pid) == min(19, http_nice + NICE)
    autogroup = Path(f"/proc/{triggers_pid}/autogroup")
    if autogroup.exists():  # Linux with autogroup: the session's nice value counts
        group, _, nice = autogroup.read_text().split()
        http_group, _, http_group_nice = (
            Path(f"/proc/{http_pid}/autogroup").read_text().split()
        )
        assert group != http_group and (nice, http_group_nice) == (str(NICE), "0")
    enabled = Path("/proc/sys/kernel/sched_autogroup_enabled")
    if autogroup.exists() and enabled.read_text().strip() == "1":
        # A waking HTTP thread preempts a worker at once; with a share of their own.
        assert os.sched_getscheduler(http_pid) == os.SCHED_OTHER
        for pid in [triggers_pid, *workers]:
            for thread in os.listdir(f"/proc/{pid}/task"):
                assert os.sched_getscheduler(int(thread)) == os.SCHED_IDLE, (
                    pid,
                    thread,
                )
