"""The dev host with in-memory OpenTelemetry exporters: `python -m tests.telemetry_host ...`.

Takes the dev host's arguments. Before the host loads the app it installs the SDK with an
`InMemorySpanExporter` and an `InMemoryMetricReader` (the app's `telemetry.configure()`
then keeps them), and serves what they hold on a port of its own, written to
`$TELEMETRY_TEST_DIR/<functions>[-<only>].port` (the dev host runs HTTP functions and
triggers in two processes, the triggers' in workers of their own): `GET /spans` and
`GET /metrics`, as JSON.

Test seam: while `$TELEMETRY_TEST_DIR/fail-publish` exists, publishing to the local event
log fails, so a command's events are left to the outbox relay.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

from shared import telemetry

SPANS = InMemorySpanExporter()
METRICS = InMemoryMetricReader()


def _value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def span_json(span: Any) -> dict[str, Any]:
    context = span.get_span_context()
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": format(context.trace_id, "032x"),
        "span_id": format(context.span_id, "016x"),
        "parent_id": format(span.parent.span_id, "016x") if span.parent else None,
        "start": span.start_time,
        "end": span.end_time,
        "status": span.status.status_code.name,
        "attributes": {k: _value(v) for k, v in (span.attributes or {}).items()},
        "links": [
            {
                "trace_id": format(link.context.trace_id, "032x"),
                "span_id": format(link.context.span_id, "016x"),
                "attributes": dict(link.attributes or {}),
            }
            for link in span.links
        ],
    }


def metrics_json() -> list[dict[str, Any]]:
    data = METRICS.get_metrics_data()
    out = []
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points = []
                for point in metric.data.data_points:
                    entry: dict[str, Any] = {"attributes": dict(point.attributes or {})}
                    if hasattr(point, "value"):
                        entry["value"] = point.value
                    else:  # histogram
                        entry["count"], entry["sum"] = point.count, point.sum
                    points.append(entry)
                out.append({"name": metric.name, "unit": metric.unit, "points": points})
    return out


class _Dump(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # the http.server API names it so
        if self.path == "/spans":
            body = [span_json(s) for s in SPANS.get_finished_spans()]
        elif self.path == "/metrics":
            body = metrics_json()
        else:
            self.send_error(404)
            return
        payload = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


def _fail_publish_while_flagged(folder: Path) -> None:
    from shared.publisher import LocalLogPublisher

    publish = LocalLogPublisher.publish

    def flaky(self: LocalLogPublisher, events: Any) -> None:
        if (folder / "fail-publish").exists():
            raise ConnectionError("event log unavailable (test)")
        publish(self, events)

    LocalLogPublisher.publish = flaky  # type: ignore[method-assign]


def main() -> int:
    folder = Path(os.environ["TELEMETRY_TEST_DIR"])
    functions = (
        sys.argv[sys.argv.index("--functions") + 1]
        if "--functions" in sys.argv
        else "all"
    )
    # A worker of the triggers host (devtools/devhost/workers.py).
    if "--only" in sys.argv:
        functions += "-" + sys.argv[sys.argv.index("--only") + 1].replace(",", "+")
    telemetry.install([SimpleSpanProcessor(SPANS)], [METRICS])
    _fail_publish_while_flagged(folder)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Dump)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port_file = folder / f"{functions}.port"
    port_file.write_text(str(server.server_address[1]))

    from devtools.devhost.__main__ import main as devhost

    return devhost(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
