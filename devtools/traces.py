"""Read what `make run` wrote to .local/telemetry (OTLP JSON lines): a request's whole trace
as a tree, or the current metrics.

    python -m devtools.traces trace [ID]     # ID: correlation id, trace id, or none: the last request
    python -m devtools.traces metrics

A projection's batch span belongs to a trace of its own when its batch mixed several
requests; it is shown under the span its link points to, marked `⇢`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devtools.processes import REPO_ROOT

DEFAULT_DIR = REPO_ROOT / ".local" / "telemetry"
CORRELATION_ID = "cqrs.correlation_id"
KINDS = {1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
FRESH_SECONDS = 120  # a metrics file untouched this long belongs to a stopped process


def _value(value: dict[str, Any]) -> Any:
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in value:
            return value[key]
    if "intValue" in value:
        return int(value["intValue"])
    if "arrayValue" in value:
        return [_value(v) for v in value["arrayValue"].get("values", [])]
    return None


def attributes(items: Iterable[dict[str, Any]] | None) -> dict[str, Any]:
    return {a["key"]: _value(a.get("value", {})) for a in items or ()}


def _lines(folder: Path, prefix: str) -> Iterator[dict[str, Any]]:
    for path in sorted(folder.glob(f"{prefix}-*.jsonl*")):
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    try:
                        yield json.loads(line)
                    except ValueError:  # a line being written right now
                        continue


@dataclass
class Span:
    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    kind: str
    start: int
    end: int
    attributes: dict[str, Any]
    links: list[tuple[str, str]]
    error: bool
    children: list[Span] = field(default_factory=list)
    logs: list[tuple[int, str, str]] = field(default_factory=list)

    @property
    def ms(self) -> float:
        return (self.end - self.start) / 1e6


def load_spans(folder: Path) -> list[Span]:
    spans = []
    for batch in _lines(folder, "traces"):
        for resource in batch.get("resourceSpans", []):
            for scope in resource.get("scopeSpans", []):
                for s in scope.get("spans", []):
                    spans.append(
                        Span(
                            s["traceId"],
                            s["spanId"],
                            s.get("parentSpanId") or None,
                            s["name"],
                            KINDS.get(s.get("kind", 1), "INTERNAL"),
                            int(s["startTimeUnixNano"]),
                            int(s["endTimeUnixNano"]),
                            attributes(s.get("attributes")),
                            [
                                (ln["traceId"], ln["spanId"])
                                for ln in s.get("links", [])
                            ],
                            s.get("status", {}).get("code") == 2,
                        )
                    )
    return spans


def attach_logs(folder: Path, spans: dict[str, Span]) -> None:
    for batch in _lines(folder, "logs"):
        for resource in batch.get("resourceLogs", []):
            for scope in resource.get("scopeLogs", []):
                for record in scope.get("logRecords", []):
                    span = spans.get(record.get("spanId", ""))
                    if span is not None:
                        span.logs.append(
                            (
                                int(record.get("timeUnixNano") or span.start),
                                record.get("severityText", ""),
                                str(_value(record.get("body", {})) or ""),
                            )
                        )


def _matches(span: Span, wanted: str) -> bool:
    value = span.attributes.get(CORRELATION_ID)
    return span.trace_id == wanted or (
        isinstance(value, str) and wanted in value.split(",")
    )


def find_traces(spans: list[Span], wanted: str | None) -> list[str]:
    """Trace ids of the request: the correlation id or trace id given, else the last request."""
    if wanted:
        roots = [s for s in spans if _matches(s, wanted) and s.kind == "SERVER"]
        roots = roots or [s for s in spans if _matches(s, wanted)]
    else:
        servers = [s for s in spans if s.kind == "SERVER" and s.parent_id is None]
        roots = [max(servers, key=lambda s: s.start)] if servers else []
    return list(dict.fromkeys(s.trace_id for s in sorted(roots, key=lambda s: s.start)))


def build(spans: list[Span], trace_id: str) -> list[Span]:
    """The roots of a trace, with children and linked spans (⇢) attached under them."""
    by_id = {s.span_id: s for s in spans}
    mine = {s.span_id for s in spans if s.trace_id == trace_id}
    linked: set[str] = set()
    for span in spans:
        if span.span_id in mine:
            continue
        target = next((sid for tid, sid in span.links if sid in mine), None)
        if target is not None:
            linked.add(span.span_id)
            span.attributes.setdefault("_linked", True)
            by_id[target].children.append(span)
    # Descendants of linked spans (their Cosmos calls) come with them.
    shown = set(mine) | linked
    grew = True
    while grew:
        grew = False
        for span in spans:
            if span.span_id not in shown and span.parent_id in shown:
                shown.add(span.span_id)
                grew = True
    roots = []
    for span in spans:
        if span.span_id not in shown or span.span_id in linked:
            continue
        parent = by_id.get(span.parent_id or "")
        if parent is not None and parent.span_id in shown:
            parent.children.append(span)
        else:
            roots.append(span)
    return sorted(roots, key=lambda s: s.start)


def describe(span: Span) -> str:
    a = span.attributes
    bits = []
    if "http.response.status_code" in a:
        bits.append(str(a["http.response.status_code"]))
    if "db.system.name" in a:
        bits.append(
            f"{a['db.system.name']}, {a.get('db.operation.batch.size', '?')} statement(s)"
        )
    if "cqrs.projection" in a:
        bits.append(a["cqrs.projection"])
        if "messaging.destination.partition.id" in a:
            bits.append(f"partition {a['messaging.destination.partition.id']}")
    if "messaging.batch.message_count" in a:
        bits.append(f"{a['messaging.batch.message_count']} event(s)")
    if "messaging.message.id" in a:
        bits.append(str(a.get("cqrs.event_type", "")))
    if span.error:
        bits.append("ERROR")
    return " · ".join(b for b in bits if b)


def render(roots: list[Span], origin: int) -> Iterator[str]:
    def walk(span: Span, prefix: str, last: bool, top: bool) -> Iterator[str]:
        branch = "" if top else ("└─ " if last else "├─ ")
        mark = "⇢ " if span.attributes.get("_linked") else ""
        detail = describe(span)
        yield (
            f"{prefix}{branch}{mark}{span.name}  [{span.kind.lower()}]"
            f"{'  ' + detail if detail else ''}  "
            f"+{(span.start - origin) / 1e6:.1f} ms  {span.ms:.1f} ms"
        )
        inner = prefix + ("" if top else ("   " if last else "│  "))
        items: list[tuple[int, Any]] = [(c.start, c) for c in span.children]
        items += [(t, (level, text)) for t, level, text in span.logs]
        items.sort(key=lambda i: i[0])
        for index, (_, item) in enumerate(items):
            is_last = index == len(items) - 1
            if isinstance(item, Span):
                yield from walk(item, inner, is_last, False)
            else:
                level, text = item
                yield f"{inner}{'└─' if is_last else '├─'} · {level} {text}"

    for root in roots:
        yield from walk(root, "", True, True)


def show_trace(folder: Path, wanted: str | None) -> int:
    spans = load_spans(folder)
    if not spans:
        print(f"no spans in {folder}: is `make run` running (it writes them there)?")
        return 1
    trace_ids = find_traces(spans, wanted)
    if not trace_ids:
        print(
            f"no span carries {wanted!r} (a correlation id, X-Correlation-Id, or a trace id)"
        )
        return 1
    attach_logs(folder, {s.span_id: s for s in spans})
    for trace_id in trace_ids:
        roots = build(spans, trace_id)
        origin = min(s.start for s in roots)
        tree = list(_all(roots))
        last = max(s.end for s in tree)
        projections = sorted(
            {
                s.attributes["cqrs.projection"]
                for s in tree
                if "cqrs.projection" in s.attributes
            }
        )
        correlation = next(
            (
                s.attributes[CORRELATION_ID]
                for s in roots
                if CORRELATION_ID in s.attributes
            ),
            "-",
        )
        print(
            f"trace {trace_id}  correlation {correlation}  "
            f"{len(tree)} spans, {len(projections)} projection(s), "
            f"{(last - origin) / 1e6:.1f} ms from the first span to the last"
        )
        for line in render(roots, origin):
            print(line)
        print()
    return 0


def _all(spans: list[Span]) -> Iterator[Span]:
    for span in spans:
        yield span
        yield from _all(span.children)


# --------------------------------------------------------------------------- metrics


def latest_exports(folder: Path) -> list[dict[str, Any]]:
    """The last export of each running process (its file was written lately)."""
    latest = []
    now = time.time()
    for path in sorted(folder.glob("metrics-*.jsonl")):
        if now - path.stat().st_mtime > FRESH_SECONDS:
            continue
        last = None
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    last = line
        if last:
            try:
                latest.append(json.loads(last))
            except ValueError:
                continue
    return latest


def quantile(bounds: list[float], counts: list[int], q: float) -> float | None:
    """A quantile from histogram buckets (linear within the bucket it falls in)."""
    total = sum(counts)
    if not total:
        return None
    rank, seen = q * total, 0
    for index, count in enumerate(counts):
        if seen + count >= rank and count:
            low = bounds[index - 1] if index > 0 else 0.0
            high = bounds[index] if index < len(bounds) else bounds[-1] * 2
            return low + (high - low) * (rank - seen) / count
        seen += count
    return bounds[-1]


def collect(exports: list[dict[str, Any]]) -> dict[str, dict[tuple, Any]]:
    """Metric -> attribute set -> value, summed over processes (gauges: the newest)."""
    out: dict[str, dict[tuple, Any]] = defaultdict(dict)
    for export in exports:
        for resource in export.get("resourceMetrics", []):
            for scope in resource.get("scopeMetrics", []):
                for metric in scope.get("metrics", []):
                    name = metric["name"]
                    if not name.startswith("cqrs."):
                        continue
                    for kind in ("sum", "gauge", "histogram"):
                        for point in metric.get(kind, {}).get("dataPoints", []):
                            key = tuple(
                                sorted(attributes(point.get("attributes")).items())
                            )
                            out[name][key] = _merge(
                                kind, out[name].get(key), point, metric.get("unit", "")
                            )
    return out


def _merge(kind: str, current: Any, point: dict[str, Any], unit: str) -> Any:
    if kind == "histogram":
        counts = [int(c) for c in point.get("bucketCounts", [])]
        bounds = point.get("explicitBounds", [])
        if current:
            counts = [a + b for a, b in zip(current["counts"], counts, strict=False)]
        return {
            "count": (current or {}).get("count", 0) + int(point.get("count", 0)),
            "sum": (current or {}).get("sum", 0) + float(point.get("sum", 0)),
            "counts": counts,
            "bounds": bounds,
            "unit": unit,
        }
    value = float(point.get("asDouble", point.get("asInt", 0)))
    if kind == "sum":
        return (current or 0) + value
    time_ns = int(point.get("timeUnixNano", 0))
    if current is None or time_ns >= current[1]:
        return (value, time_ns)
    return current


def show_metrics(folder: Path) -> int:
    exports = latest_exports(folder)
    if not exports:
        print(f"no recent metrics in {folder}: `make run` exports them every 10 s")
        return 1
    for name, points in sorted(collect(exports).items()):
        print(name)
        for key, value in sorted(points.items(), key=lambda kv: str(kv[0])):
            labels = ", ".join(f"{k}={v}" for k, v in key) or "-"
            if isinstance(value, dict):
                unit = value["unit"]
                p50 = quantile(value["bounds"], value["counts"], 0.5)
                p95 = quantile(value["bounds"], value["counts"], 0.95)
                average = value["sum"] / value["count"] if value["count"] else 0
                text = (
                    f"count {value['count']}  avg {average:.1f} {unit}  "
                    f"p50 ~{p50 or 0:.0f} {unit}  p95 ~{p95 or 0:.0f} {unit}"
                )
            elif isinstance(value, tuple):
                text = f"{value[0]:g}"
            else:
                text = f"{value:g}"
            print(f"  {labels:<70} {text}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.traces", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=DEFAULT_DIR,
        help="TELEMETRY_DIR (default .local/telemetry)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    trace = sub.add_parser("trace", help="a request's spans as a tree")
    trace.add_argument(
        "id",
        nargs="?",
        default="",
        help="correlation id or trace id (default: the last request)",
    )
    sub.add_parser("metrics", help="the current value of every cqrs.* metric")
    args = parser.parse_args(argv)
    if args.command == "trace":
        return show_trace(args.dir, args.id or None)
    return show_metrics(args.dir)


if __name__ == "__main__":
    sys.exit(main())
