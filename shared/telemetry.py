"""Telemetry: one trace per request across the outbox and Event Hubs, the system's metrics, logs.

Exporters by configuration (`configure`, called once per worker process):
- `APPLICATIONINSIGHTS_CONNECTION_STRING`: Azure Monitor (azure-monitor-opentelemetry);
- `OTEL_EXPORTER_OTLP_ENDPOINT`: OTLP over HTTP/protobuf (a collector, Jaeger, the Aspire
  dashboard), with the standard `OTEL_*` variables (headers, intervals, service name);
- `TELEMETRY_DIR`: OTLP JSON lines under that folder (`make run` writes .local/telemetry,
  read by `make trace` and `make metrics`).
With none of them nothing is installed, and every helper below returns after one flag
check, so the request path pays nothing for telemetry it does not send.

What is traced (OpenTelemetry semantic conventions for HTTP, database and messaging):
the HTTP span of every route (`serve_http`); the SQL transactions in it (`sql_transaction`);
publishing (`publishing`: the event's `traceparent` application property carries the
send span's context, or, when the relay publishes later, a `create` span's in the trace the
outbox row recorded); the projections' batches (sync/telemetry.py) with a span link to
every event's producer context; Azure SDK calls (Cosmos DB, Blob, Event Hubs) through
azure-core's tracing. Every span and log record carries the request's correlation id.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import urlsplit

from shared import config

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor
else:
    # The SDK is imported only once telemetry is on (a quarter of a second at start-up);
    # until then the processor below is a plain class with the same interface.
    SpanProcessor = object

log = logging.getLogger(__name__)

T = TypeVar("T")

CORRELATION_ID = "cqrs.correlation_id"  # attribute on every span and log record
ROUTE_PREFIX = "/api/"  # host.json extensions.http.routePrefix
METER_NAME = "orders.cqrs"
TRACER_NAME = "orders.cqrs"
# Spans show at most this many of a batch's correlation ids (the links carry each one).
MAX_CORRELATION_IDS = 20


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str  # counter | histogram | gauge
    unit: str
    description: str
    attributes: tuple[str, ...]


# The metrics the code emits, with the attributes each carries. Alerts and the workbook in
# infra/app/observability.bicep query only these (tests/test_observability_infra.py).
METRICS: tuple[Metric, ...] = (
    Metric("cqrs.commands", "counter", "{command}", "Commands answered, by outcome.",
           ("command", "outcome", "status_code")),
    Metric("cqrs.command.duration", "histogram", "ms", "Command latency in the function.",
           ("command",)),
    Metric("cqrs.query.duration", "histogram", "ms", "Query latency in the function.",
           ("route",)),
    Metric("cqrs.events.published", "counter", "{event}", "Events the transport accepted.",
           ("event_type",)),
    Metric("cqrs.outbox.unsent", "gauge", "{event}", "Outbox events not yet published, as the relay last saw them.",
           ()),
    Metric("cqrs.outbox.oldest_age", "gauge", "s", "Age of the oldest unpublished outbox event (0: none).",
           ()),
    Metric("cqrs.sync.events", "counter", "{event}", "Events a projection handled, by outcome.",
           ("projection", "outcome")),
    Metric("cqrs.sync.batch.duration", "histogram", "ms", "Time a projection took for one batch.",
           ("projection",)),
    Metric("cqrs.sync.lag", "gauge", "s", "How long the oldest event a projection has not applied has waited (GET /api/projections).",
           ("projection", "partition")),
    Metric("cqrs.readmodel.freshness", "gauge", "s", "Seconds from the newest event of a batch reaching the event hub to its projection applying it.",
           ("projection",)),
    Metric("cqrs.dead_letters", "counter", "{event}", "Events dead-lettered by a projection.",
           ("projection",)),
)  # fmt: skip


class _State:
    def __init__(self) -> None:
        self.enabled = False
        self.configured = False
        self.tracer: Any = None
        self.instruments: dict[str, Any] = {}
        self.providers: list[Any] = []


_state = _State()


@dataclass
class _Correlation:
    value: str | None = None


_correlation: ContextVar[_Correlation | None] = ContextVar(
    "cqrs_correlation", default=None
)
# Per event id, the context a relayed event was created in (see `publishing`).
_message_contexts: ContextVar[Mapping[str, Any] | None] = ContextVar(
    "cqrs_message_contexts", default=None
)
# Statements run by the SQL transaction being traced (its span's summary).
_statements: ContextVar[list[str] | None] = ContextVar("cqrs_sql", default=None)


def enabled() -> bool:
    return _state.enabled


def tracer() -> Any:
    return _state.tracer


def instrument(name: str) -> Any:
    """An instrument of `METRICS` by name (only while enabled)."""
    return _state.instruments[name]


# --------------------------------------------------------------------------- setup


def configure() -> bool:
    """Call once per worker process, before the app's clients are created; True if on."""
    if _state.configured:
        return _state.enabled
    connection_string = config.get("APPLICATIONINSIGHTS_CONNECTION_STRING")
    otlp = config.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    folder = config.get("TELEMETRY_DIR")
    if not (connection_string or otlp or folder):
        _state.configured = True
        return False
    spans, readers, logs = [], [], []
    if otlp:
        spans_, readers_, logs_ = _otlp_exporters()
        spans += spans_
        readers += readers_
        logs += logs_
    if folder:
        spans_, readers_, logs_ = _file_exporters(Path(folder))
        spans += spans_
        readers += readers_
        logs += logs_
    if connection_string:
        from azure.monitor.opentelemetry import configure_azure_monitor

        # Traces, metrics, logs and the azure-core clients' calls (Cosmos DB, Event Hubs,
        # Blob) go to Application Insights; the OTLP or file exporters, if set, as well.
        configure_azure_monitor(
            logger_name="",
            enable_live_metrics=True,
            resource=_resource(),
            span_processors=[CorrelationSpanProcessor(), *spans],
            metric_readers=readers,
            log_record_processors=logs,
        )
        _activate()
    else:
        install(spans, readers, logs)
    log.info(
        "telemetry on: %s",
        ", ".join(
            name
            for name, on in (
                ("Azure Monitor", connection_string),
                (f"OTLP {otlp}", otlp),
                (f"files in {folder}", folder),
            )
            if on
        ),
    )
    return True


def install(
    span_processors: Sequence[Any] = (),
    metric_readers: Sequence[Any] = (),
    log_processors: Sequence[Any] = (),
) -> None:
    """Install the OpenTelemetry SDK with these processors and readers (also for tests:
    in-memory exporters). Later `configure()` calls keep what is installed."""
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider

    resource = _resource()
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(CorrelationSpanProcessor())
    for processor in span_processors:
        tracer_provider.add_span_processor(processor)
    trace.set_tracer_provider(tracer_provider)
    meter_provider = MeterProvider(
        resource=resource, metric_readers=list(metric_readers)
    )
    metrics.set_meter_provider(meter_provider)
    _state.providers = [tracer_provider, meter_provider]
    if log_processors:
        from opentelemetry._logs import set_logger_provider
        from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler

        logger_provider = LoggerProvider(resource=resource)
        for processor in log_processors:
            logger_provider.add_log_record_processor(processor)
        set_logger_provider(logger_provider)
        handler = LoggingHandler(level=logging.INFO, logger_provider=logger_provider)
        # The exporters' own complaints must not be exported through themselves.
        handler.addFilter(lambda r: not r.name.startswith("opentelemetry"))
        logging.getLogger().addHandler(handler)
        _state.providers.append(logger_provider)
    # Cosmos DB, Blob and Event Hubs calls become child spans of the current span.
    from azure.core.settings import settings

    settings.tracing_implementation = "opentelemetry"
    _activate()


def flush(timeout_millis: int = 5000) -> None:
    """Export what is buffered now (tests, and before a process exits on purpose)."""
    for provider in _state.providers:
        with _suppress():
            provider.force_flush(timeout_millis)


def _activate() -> None:
    from opentelemetry import metrics, trace

    _state.tracer = trace.get_tracer(TRACER_NAME)
    meter = metrics.get_meter(METER_NAME)
    create: dict[str, Callable[..., Any]] = {
        "counter": meter.create_counter,
        "histogram": meter.create_histogram,
        "gauge": meter.create_gauge,
    }
    _state.instruments = {
        m.name: create[m.kind](m.name, unit=m.unit, description=m.description)
        for m in METRICS
    }
    _install_log_fields()
    _state.configured = _state.enabled = True


def _resource() -> Any:
    from opentelemetry.sdk.resources import Resource

    # Resource.create also reads OTEL_RESOURCE_ATTRIBUTES; the service name is a setting.
    return Resource.create(
        {
            "service.name": config.get("OTEL_SERVICE_NAME"),
            "service.instance.id": f"{socket.gethostname()}-{os.getpid()}",
        }
    )


def _otlp_exporters() -> tuple[list[Any], list[Any], list[Any]]:
    # The exporters read OTEL_EXPORTER_OTLP_ENDPOINT (+ /v1/traces, ...), _HEADERS, etc.
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
        OTLPMetricExporter,
    )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    return (
        [BatchSpanProcessor(OTLPSpanExporter())],
        [PeriodicExportingMetricReader(OTLPMetricExporter())],
        [BatchLogRecordProcessor(OTLPLogExporter())],
    )


FILE_LIMIT_BYTES = 50 * 1024 * 1024  # then the file is rotated once (<name>.1)


def _rotating(path: Path) -> IO[str]:
    # The exporters only write to and flush their stream, which RotatingFile provides.
    return cast(IO[str], RotatingFile(path))


class RotatingFile:
    """A text stream appending to `path` that moves it to `<path>.1` past `limit` bytes,
    so a long `make run` keeps at most twice the limit per signal on disk."""

    def __init__(self, path: Path, limit: int = FILE_LIMIT_BYTES) -> None:
        self.path = path
        self.limit = limit
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115

    @property
    def closed(self) -> bool:
        return self._file.closed

    def write(self, text: str) -> int:
        if self._file.tell() + len(text) > self.limit:
            self._file.close()
            os.replace(self.path, self.path.with_name(self.path.name + ".1"))
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        return self._file.write(text)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _file_exporters(folder: Path) -> tuple[list[Any], list[Any], list[Any]]:
    from opentelemetry.exporter.otlp.json.file import (
        FileMetricExporter,
        FileSpanExporter,
    )
    from opentelemetry.exporter.otlp.json.file._log_exporter import FileLogExporter
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # One file per process and signal (the dev host runs two processes): appends from
    # two processes to one file could interleave a line.
    tag = os.getpid()
    interval = int(os.environ.get("OTEL_METRIC_EXPORT_INTERVAL") or 10_000)
    return (
        [
            BatchSpanProcessor(
                FileSpanExporter(stream=_rotating(folder / f"traces-{tag}.jsonl")),
                schedule_delay_millis=500,  # `make trace` right after a request finds it
            )
        ],
        [
            PeriodicExportingMetricReader(
                FileMetricExporter(stream=_rotating(folder / f"metrics-{tag}.jsonl")),
                export_interval_millis=interval,
            )
        ],
        [
            BatchLogRecordProcessor(
                FileLogExporter(stream=_rotating(folder / f"logs-{tag}.jsonl")),
                schedule_delay_millis=500,
            )
        ],
    )


class CorrelationSpanProcessor(SpanProcessor):
    """Stamps the correlation id of the work in progress on every span started in it
    (ours and the Azure SDK's), so one id finds every span of a request."""

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        holder = _correlation.get()
        if holder is not None and holder.value is not None:
            span.set_attribute(CORRELATION_ID, holder.value)

    def _on_ending(self, span: Any) -> None:
        pass

    def on_end(self, span: Any) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _install_log_fields() -> None:
    """Every log record gets `cqrs.correlation_id`, `otelTraceID` and `otelSpanID`: exported
    log records carry them as attributes (with their own trace and span ids), and any
    formatter can print them."""
    from opentelemetry import trace

    previous = logging.getLogRecordFactory()
    if getattr(previous, "_cqrs", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        holder = _correlation.get()
        setattr(record, CORRELATION_ID, holder.value if holder else None)
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.otelTraceID = format(context.trace_id, "032x")
            record.otelSpanID = format(context.span_id, "016x")
        return record

    factory._cqrs = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


# --------------------------------------------------------------------------- context


@contextmanager
def correlated(correlation_id: str | None) -> Iterator[_Correlation]:
    """Work done in the block (spans, logs) carries this correlation id."""
    holder = _Correlation(correlation_id)
    token = _correlation.set(holder)
    try:
        yield holder
    finally:
        _correlation.reset(token)


def correlate(correlation_id: str) -> None:
    """The request's correlation id is known: stamp it on its span and what follows."""
    if not _state.enabled:
        return
    holder = _correlation.get()
    if holder is not None:
        holder.value = correlation_id
    from opentelemetry import trace

    trace.get_current_span().set_attribute(CORRELATION_ID, correlation_id)


def joined_ids(ids: Sequence[str | None]) -> str | None:
    """A batch's distinct correlation ids as one attribute value (first ones, in order)."""
    distinct = list(dict.fromkeys(i for i in ids if i))
    return ",".join(distinct[:MAX_CORRELATION_IDS]) or None


def traceparent(span_context: Any) -> str:
    return (
        f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}"
        f"-{int(span_context.trace_flags):02x}"
    )


def trace_context() -> tuple[str | None, str | None]:
    """(traceparent, tracestate) of the current span, to store beside an outbox row."""
    if not _state.enabled:
        return None, None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None, None
    return traceparent(context), (context.trace_state.to_header() or None)


def extract(parent: str | None, state: str | None = None) -> Any:
    """An OpenTelemetry context from W3C header values, or None when there are none."""
    if not parent:
        return None
    from opentelemetry.trace.propagation.tracecontext import (
        TraceContextTextMapPropagator,
    )

    carrier = {"traceparent": parent}
    if state:
        carrier["tracestate"] = state
    return TraceContextTextMapPropagator().extract(carrier)


def span_context_of(parent: str | None, state: str | None = None) -> Any:
    """The remote span context a traceparent names, or None (invalid or absent)."""
    from opentelemetry import trace

    context = extract(parent, state)
    if context is None:
        return None
    span_context = trace.get_current_span(context).get_span_context()
    return span_context if span_context.is_valid else None


# --------------------------------------------------------------------------- HTTP


def serve_http(
    handle: Callable[[Any, Any, Any], Any], spec: Any, handler: Callable, req: Any
) -> Any:
    """Run `handle(spec, handler, req)` in the request's SERVER span and record the
    command or query metrics. The span continues the caller's `traceparent` header,
    or the context the Functions worker made current (the host's invocation)."""
    if not _state.enabled:
        return handle(spec, handler, req)
    with _server_span(spec, handler, req) as answer:
        response = handle(spec, handler, req)
        answer.status = response.status_code
    return response


async def serve_http_async(
    handle: Callable[[Any, Any, Any], Any], spec: Any, handler: Callable, req: Any
) -> Any:
    """`serve_http` for an `async def` route: `handle` returns an awaitable."""
    if not _state.enabled:
        return await handle(spec, handler, req)
    with _server_span(spec, handler, req) as answer:
        response = await handle(spec, handler, req)
        answer.status = response.status_code
    return response


@dataclass
class _Answer:
    status: int = 500  # unless the handler answers


@contextmanager
def _server_span(spec: Any, handler: Callable, req: Any) -> Iterator[_Answer]:
    """The request's SERVER span, ended with the status set on the answer it yields."""
    from opentelemetry.trace import SpanKind

    method = (req.method or "").upper()
    route = ROUTE_PREFIX + spec.path
    module = getattr(handler, "__module__", "") or ""
    started = time.perf_counter()
    answer = _Answer()
    with (
        correlated(None),
        _state.tracer.start_as_current_span(
            f"{method} {route}",
            context=_caller_context(req),
            kind=SpanKind.SERVER,
            attributes=_http_attributes(req, method, route, spec.name),
        ) as span,
    ):
        try:
            yield answer
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000
            _end_http_span(span, spec.name, module, route, answer.status, elapsed_ms)


def _caller_context(req: Any) -> Any:
    """The context of the caller's `traceparent` header, or None when the worker has
    made the host's invocation current (the span is then its child)."""
    from opentelemetry import trace

    if trace.get_current_span().get_span_context().is_valid:
        return None
    headers = {k.lower(): v for k, v in req.headers.items()}
    return extract(headers.get("traceparent"), headers.get("tracestate"))


def _http_attributes(
    req: Any, method: str, route: str, operation: str
) -> dict[str, Any]:
    url = urlsplit(req.url or "")
    attributes: dict[str, Any] = {
        "http.request.method": method,
        "http.route": route,
        "url.path": url.path,
        "url.scheme": url.scheme or "http",
        "cqrs.operation": operation,
    }
    if url.hostname:
        attributes["server.address"] = url.hostname
    if url.port:
        attributes["server.port"] = url.port
    return attributes


def _end_http_span(
    span: Any, operation: str, module: str, route: str, status: int, elapsed_ms: float
) -> None:
    """The answer's status on the span, and the command or query metrics."""
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_attribute("error.type", str(status))
        span.set_status(Status(StatusCode.ERROR))
    if module.startswith("commands"):
        _record_command(operation, status, elapsed_ms)
        span.set_attribute("cqrs.command", operation)
    elif module.startswith("queries"):
        _state.instruments["cqrs.query.duration"].record(elapsed_ms, {"route": route})
        span.set_attribute("cqrs.query", operation)


def _record_command(command: str, status: int, elapsed_ms: float) -> None:
    outcome = "accepted" if status < 400 else "rejected" if status < 500 else "failed"
    _state.instruments["cqrs.commands"].add(
        1, {"command": command, "outcome": outcome, "status_code": status}
    )
    _state.instruments["cqrs.command.duration"].record(elapsed_ms, {"command": command})


# --------------------------------------------------------------------------- SQL

_SUMMARY = re.compile(
    r"^\s*(SELECT\b.*?\bFROM|INSERT\s+INTO|UPDATE|DELETE\s+FROM|MERGE\s+INTO|MERGE)\s+"
    r"(?:dbo\.)?\[?(\w+)",
    re.IGNORECASE | re.DOTALL,
)


@functools.lru_cache(maxsize=512)
def _statement_summary(sql: str) -> str:
    match = _SUMMARY.match(sql)
    if not match:
        return sql.split(None, 1)[0].upper() if sql.strip() else "?"
    return f"{match.group(1).split()[0].upper()} {match.group(2)}"


def sql_statement(sql: str) -> None:
    """A statement ran in the traced transaction (its span names what the transaction did)."""
    if not _state.enabled:
        return
    statements = _statements.get()
    if statements is not None:
        statements.append(sql)


def sql_transaction(run: Callable[..., T]) -> Callable[..., T]:
    """Decorates `Database.run`: one CLIENT span per transaction (with its retries) of
    the operation being traced."""

    @functools.wraps(run)
    def traced(db: Any, work: Callable, *args: Any, **kwargs: Any) -> T:
        if not _state.enabled:
            return run(db, work, *args, **kwargs)
        from opentelemetry import trace
        from opentelemetry.trace import SpanKind

        if not trace.get_current_span().get_span_context().is_valid:
            # Only inside a request, a publish or a batch: the relay's and the gauges'
            # periodic reads would otherwise start a trace of their own every few seconds.
            return run(db, work, *args, **kwargs)

        system, namespace, server = _database_identity(db.dialect)
        attributes: dict[str, Any] = {"db.system.name": system}
        if namespace:
            attributes["db.namespace"] = namespace
        if server:
            attributes["server.address"] = server
            attributes["server.port"] = 1433
        statements: list[str] = []
        token = _statements.set(statements)
        try:
            with _state.tracer.start_as_current_span(
                "TRANSACTION", kind=SpanKind.CLIENT, attributes=attributes
            ) as span:
                try:
                    return run(db, work, *args, **kwargs)
                finally:
                    summary = " ".join(
                        dict.fromkeys(_statement_summary(s) for s in statements)
                    )
                    if summary:
                        # db.query.summary: low-cardinality, from the statements' text
                        # (parameters are never in it: every statement binds `?`).
                        span.set_attribute("db.query.summary", summary)
                        span.update_name(summary[:200])
                    span.set_attribute("db.operation.batch.size", len(statements))
        finally:
            _statements.reset(token)

    return traced


@functools.cache
def _database_identity(dialect: str) -> tuple[str, str | None, str | None]:
    if dialect == "sqlite":
        return "sqlite", Path(config.get("SQLITE_PATH") or "").name or None, None
    server = config.get("SQL_SERVER")
    database = config.get("SQL_DATABASE")
    if not server and (conn := config.get("SQL_CONNECTION_STRING")):
        parts = dict(
            p.split("=", 1) for p in conn.split(";") if "=" in p
        )  # ODBC keys are case-insensitive
        parts = {k.strip().lower(): v.strip() for k, v in parts.items()}
        server = parts.get("server", "").removeprefix("tcp:").split(",")[0] or None
        database = parts.get("database")
    return "microsoft.sql_server", database, server


# --------------------------------------------------------------------------- messaging


def _messaging_attributes() -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "messaging.system": "eventhubs",
        "messaging.destination.name": config.get("EVENTHUB_NAME"),
    }
    namespace = config.get("EventHubConnection__fullyQualifiedNamespace")
    if namespace:
        attributes["server.address"] = namespace
    return attributes


@contextmanager
def publishing(
    events: Sequence[Any],
    created_in: Mapping[str, tuple[str | None, str | None]] | None = None,
) -> Iterator[None]:
    """The PRODUCER span of one publish; counts the events once the transport took them.

    `created_in` (the relay): per event id, the trace context stored with its outbox row.
    Each such event gets a `create` span in that trace, whose context its message carries,
    so a command published later by the relay stays one trace with its projections."""
    if not _state.enabled:
        yield
        return
    from opentelemetry.trace import Link, SpanKind

    hub = config.get("EVENTHUB_NAME")
    base = _messaging_attributes()
    contexts = _create_spans(events, created_in or {}, hub, base)
    holder = _correlation.get()
    correlation_id = (
        holder.value
        if holder and holder.value
        else joined_ids([e.correlation_id for e in events])
    )
    token = _message_contexts.set(contexts)
    try:
        with (
            correlated(correlation_id),
            _state.tracer.start_as_current_span(
                f"send {hub}",
                kind=SpanKind.PRODUCER,
                links=[Link(c) for c in contexts.values()],
                attributes={
                    **base,
                    "messaging.operation.type": "send",
                    "messaging.operation.name": "send",
                    "messaging.batch.message_count": len(events),
                },
            ),
        ):
            yield
    finally:
        _message_contexts.reset(token)
    counter = _state.instruments["cqrs.events.published"]
    for event in events:
        counter.add(1, {"event_type": event.event_type})


def _create_spans(
    events: Sequence[Any],
    created_in: Mapping[str, tuple[str | None, str | None]],
    hub: str | None,
    base: dict[str, Any],
) -> dict[str, Any]:
    """Per event id, the context of its `create` span, ended in the trace its outbox
    row recorded (events without one get none)."""
    from opentelemetry.trace import SpanKind

    contexts: dict[str, Any] = {}
    for event in events if created_in else ():
        parent = extract(*created_in.get(event.event_id, (None, None)))
        if parent is None:
            continue
        with correlated(event.correlation_id):
            span = _state.tracer.start_span(
                f"create {hub}",
                context=parent,
                kind=SpanKind.PRODUCER,
                attributes={
                    **base,
                    "messaging.operation.type": "create",
                    "messaging.operation.name": "create",
                    "messaging.message.id": event.event_id,
                    "cqrs.event_type": event.event_type,
                },
            )
        span.end()
        contexts[event.event_id] = span.get_span_context()
    return contexts


def message_properties(event: Any) -> dict[str, str]:
    """The event's application properties plus `traceparent` (and `tracestate`): the
    context it was produced in, which each projection links its batch span to."""
    properties = event.properties()
    if not _state.enabled:
        return properties
    from opentelemetry import trace

    context = (_message_contexts.get() or {}).get(event.event_id)
    if context is None:
        context = trace.get_current_span().get_span_context()
    if context.is_valid:
        properties["traceparent"] = traceparent(context)
        if state := context.trace_state.to_header():
            properties["tracestate"] = state
    return properties


def record_outbox_backlog(read: Callable[[], tuple[int, float | None]]) -> None:
    """Gauges of what the outbox has not published: `read()` -> (count, oldest age in s)."""
    if not _state.enabled:
        return
    try:
        unsent, oldest = read()
    except Exception:  # a gauge must never fail the relay
        log.warning("could not read the outbox backlog", exc_info=True)
        return
    _state.instruments["cqrs.outbox.unsent"].set(unsent)
    _state.instruments["cqrs.outbox.oldest_age"].set(round(oldest or 0.0, 3))


@contextmanager
def _suppress() -> Iterator[None]:
    try:
        yield
    except Exception:  # flushing is best effort
        log.debug("telemetry flush failed", exc_info=True)


__all__ = [
    "CORRELATION_ID",
    "METRICS",
    "Metric",
    "configure",
    "correlate",
    "correlated",
    "enabled",
    "install",
    "message_properties",
    "publishing",
    "record_outbox_backlog",
    "serve_http",
    "serve_http_async",
    "sql_statement",
    "sql_transaction",
    "trace_context",
]
