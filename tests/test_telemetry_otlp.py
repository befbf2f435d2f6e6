"""`make run` with OTEL_EXPORTER_OTLP_ENDPOINT exports its spans and metrics over OTLP/HTTP
(protobuf) to whatever listens there, and writes the local files `make trace` reads.

The receiver here is a few lines of http.server decoding OTLP's protobuf messages, as a
collector, Jaeger or the Aspire dashboard would receive them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from devtools.processes import REPO_ROOT, free_port, port_in_use
from devtools.stack import StackPorts
from sync.projections import PROJECTIONS
from tests.api import customer, order, product, unique

pytestmark = pytest.mark.stack

HOST_STATUS_PATH = "/admin/host/status"


class Received:
    def __init__(self) -> None:
        self.spans: list[tuple[str, int, dict[str, object]]] = []
        self.metrics: set[str] = set()
        self.paths: set[str] = set()
        self.lock = threading.Lock()


def receiver(received: Received) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # the http.server API names it so
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            assert self.headers.get("Content-Type") == "application/x-protobuf"
            with received.lock:
                received.paths.add(self.path)
                if self.path == "/v1/traces":
                    request = ExportTraceServiceRequest.FromString(body)
                    for resource in request.resource_spans:
                        for scope in resource.scope_spans:
                            for span in scope.spans:
                                attributes = {
                                    a.key: getattr(a.value, a.value.WhichOneof("value"))
                                    for a in span.attributes
                                }
                                received.spans.append(
                                    (span.name, span.kind, attributes)
                                )
                    reply = ExportTraceServiceResponse().SerializeToString()
                elif self.path == "/v1/metrics":
                    request = ExportMetricsServiceRequest.FromString(body)
                    for resource in request.resource_metrics:
                        for scope in resource.scope_metrics:
                            received.metrics |= {m.name for m in scope.metrics}
                    reply = ExportMetricsServiceResponse().SerializeToString()
                else:  # /v1/logs
                    reply = b""
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def make_run(tmp_path: Path) -> Iterator[tuple[httpx.Client, Received, Path]]:
    """`make run` on a free API port and a temporary state dir, exporting to a receiver."""
    defaults = StackPorts()
    emulators = (defaults.blob, defaults.queue, defaults.table, defaults.cosmos)
    if any(port_in_use(p) for p in emulators):
        pytest.skip("make run's emulator ports are taken (is a `make run` running?)")
    received = Received()
    server = receiver(received)
    port = free_port()
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{server.server_address[1]}",
        "OTEL_METRIC_EXPORT_INTERVAL": "1000",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "OTEL_BLRP_SCHEDULE_DELAY": "200",
        "TELEMETRY_DIR": str(tmp_path / "telemetry"),
    }
    log = open(tmp_path / "make-run.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        ["make", "--no-print-directory", "run", f"PORT={port}",
         f"RUN_ARGS=--state-dir {tmp_path / 'state'}", f"PYTHON={sys.executable}"],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180  # a first `make run` may install dependencies
        while not _answers(f"http://127.0.0.1:{port}{HOST_STATUS_PATH}"):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    "make run did not start:\n"
                    + (tmp_path / "make-run.log").read_text(errors="replace")[-3000:]
                )
            time.sleep(0.25)
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}/api",
            timeout=30,
            headers=_auth_headers(tmp_path / "state"),
        ) as http:
            yield http, received, tmp_path / "telemetry"
    finally:
        # Ctrl-C, as a developer stops it: the stack stops everything it started.
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()
        server.shutdown()


def _auth_headers(state_dir: Path) -> dict[str, str]:
    """An admin token of the stack's development issuer, where the stack has one."""
    try:
        from devtools import dev_issuer
    except ImportError:
        return {}
    token = dev_issuer.mint(state_dir, ["Orders.Admin"], "otlp-test")
    return {"Authorization": f"Bearer {token}"}


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def test_make_run_exports_spans_and_metrics_over_otlp(make_run):
    http, received, folder = make_run
    correlation_id = unique("otlp")
    buyer, widget = customer(http), product(http)
    order(http, buyer["id"], [(widget["id"], 1)])
    http.post("/customers", json={}, headers={"X-Correlation-Id": correlation_id})

    wanted_spans = {"POST /api/orders", "send domain-events", "process domain-events"}
    wanted_metrics = {
        "cqrs.commands",
        "cqrs.command.duration",
        "cqrs.events.published",
        "cqrs.sync.events",
        "cqrs.sync.batch.duration",
        "cqrs.readmodel.freshness",
    }
    deadline = time.monotonic() + 30
    while True:
        with received.lock:
            names = {name for name, _, _ in received.spans}
            projections = {a.get("cqrs.projection") for _, _, a in received.spans} - {
                None
            }
            metrics = set(received.metrics)
        if (
            wanted_spans <= names
            and wanted_metrics <= metrics
            and projections >= set(PROJECTIONS)
        ):
            break
        assert time.monotonic() < deadline, (
            f"missing spans {wanted_spans - names}, metrics {wanted_metrics - metrics}, "
            f"projections {set(PROJECTIONS) - projections}"
        )
        time.sleep(0.25)
    assert {"/v1/traces", "/v1/metrics"} <= received.paths
    with received.lock:
        server = [a for n, k, a in received.spans if n == "POST /api/orders"]
    assert server[0]["http.route"] == "/api/orders"
    assert server[0]["cqrs.correlation_id"]

    # The same run wrote the local files, and `make trace` shows the request's tree.
    time.sleep(1)  # the file exporter's batch delay
    shown = subprocess.run(
        [sys.executable, "-m", "devtools.traces", "--dir", str(folder), "trace", correlation_id],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "POST /api/customers  [server]  400" in shown.stdout
    last = subprocess.run(
        [sys.executable, "-m", "devtools.traces", "--dir", str(folder), "trace"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False,
    ).stdout  # fmt: skip
    assert "POST /api/customers" in last
