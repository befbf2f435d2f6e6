"""`python -m devtools.devhost`: run the function app like `func start` (dev only).

python -m devtools.devhost --host 127.0.0.1 --port 7071 [--app function_app:app]
    [--settings local.settings.json] [--root .] [--log-level INFO]
    [--functions all|http|triggers]

`--functions` runs a subset, as Flex Consumption scales HTTP functions apart from the
Event Hub and timer functions: `http` serves the HTTP functions and starts no listener;
`triggers` runs the Event Hub and timer functions, each Event Hub function in a worker
process of its own (workers.py), and serves only the host's admin status on `--port`
(how a supervisor knows it is up). An `http` host and a `triggers` host keep the
projections' threads off the HTTP functions' CPU and GIL, and the workers keep each
projection off the others'. `all` (the default) is everything in one process.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import logging
import os
import signal
import sys
import threading
import warnings
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn

from devtools.devhost import STATUS_PATH
from devtools.devhost.http import create_app, describe_routes
from devtools.devhost.indexing import (
    EVENT_HUB_TRIGGER,
    HTTP_TRIGGER,
    TIMER_TRIGGER,
    IndexedFunction,
    index_functions,
    load_app,
)
from devtools.devhost.invocation import Invoker
from devtools.devhost.listeners import ListenerGroup
from devtools.devhost.retry import RetryPolicy
from devtools.devhost.settings import HostConfig, load_host_config, load_local_settings
from devtools.devhost.timers import TimerRunner
from devtools.devhost.workers import (
    NICE,
    Workers,
    die_with_the_host,
    lower_priority,
    worker_groups,
    worker_tag,
)

log = logging.getLogger("host")

DEFAULT_EVENT_LOG_PATH = ".local/events.db"
STOP_TIMEOUT = 10.0
FUNCTION_SETS = ("all", "http", "triggers")


class _Formatter(logging.Formatter):
    def __init__(self, tag: str = "") -> None:
        super().__init__()
        # Processes running a subset may share one log file: the tag says whose line it is.
        self.tag = f"{tag} " if tag else ""

    def format(self, record: logging.LogRecord) -> str:
        name = "app" if record.name == "root" else record.name
        level = f"{record.levelname} " if record.levelno >= logging.WARNING else ""
        text = f"{self.formatTime(record, '%H:%M:%S')}.{int(record.msecs):03d} {self.tag}[{name}] {level}{record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def configure_logging(level: str, tag: str = "") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_Formatter(tag))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The Azure SDK logs every HTTP call at INFO; uvicorn's own lines are replaced by ours.
    for noisy in ("azure", "uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.devhost", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=7071,
        help="HTTP port (default 7071); with --functions triggers, the admin status only",
    )
    parser.add_argument(
        "--app", default="function_app:app", help="module:attribute of the FunctionApp"
    )
    parser.add_argument(
        "--settings",
        default="local.settings.json",
        help="local settings file, relative to --root (used when present)",
    )
    parser.add_argument(
        "--root",
        default=".",
        help="app root: sys.path, host.json, relative paths (default: cwd)",
    )
    parser.add_argument(
        "--log-level", default=os.environ.get("DEVHOST_LOG_LEVEL", "INFO")
    )
    parser.add_argument(
        "--functions",
        choices=FUNCTION_SETS,
        default="all",
        help="which functions this process runs: HTTP, Event Hub and timer triggers, "
        "or all (default)",
    )
    parser.add_argument(
        "--only",
        help="with --functions triggers: run these functions (comma-separated) here; "
        "without it, each Event Hub function runs in a worker process of its own",
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=NICE,
        help="with --functions triggers: how much lower the triggers' CPU priority is "
        f"than the HTTP functions' (a nice increment; default {NICE}; with a session "
        "of their own, also the idle scheduling policy; 0 keeps both as they are)",
    )
    return parser.parse_args(argv)


def runs_http(args: argparse.Namespace) -> bool:
    return args.functions in ("all", "http")


def runs_triggers(args: argparse.Namespace) -> bool:
    return args.functions in ("all", "triggers")


def build_eventhub_runner(
    functions: list[IndexedFunction], host_config: HostConfig, invoker: Invoker
) -> ListenerGroup[Any] | None:
    """The Event Hub listeners, or None (with the reason logged) when they cannot run."""
    if not any(f.trigger_type == EVENT_HUB_TRIGGER for f in functions):
        return None
    # Imported here: only Event Hub apps need the log (shared/) and the storage packages.
    from devtools.devhost.checkpoints import (
        checkpoint_container_name,
        open_blob_checkpoint_store,
    )
    from devtools.devhost.eventhub import EventHubRunner, open_event_log

    storage = os.environ.get("AzureWebJobsStorage", "")
    if not storage:
        log.error(
            "AzureWebJobsStorage is not set: Event Hub listeners not started (checkpoints live there)"
        )
        return None
    container = checkpoint_container_name()
    try:
        store = open_blob_checkpoint_store(storage, container)
    except Exception as exc:  # noqa: BLE001 - the host keeps serving HTTP when a listener cannot start
        log.error(
            "Checkpoint store (container '%s') unavailable: %s; Event Hub listeners not started",
            container,
            exc,
        )
        return None
    event_log = open_event_log(
        os.environ.get("LOCAL_EVENT_LOG_PATH") or DEFAULT_EVENT_LOG_PATH
    )
    log.info(
        "Event log %s (%d partitions); checkpoints in container '%s'",
        event_log.path.resolve(),
        event_log.partition_count,
        container,
    )
    return EventHubRunner(
        functions,
        event_log=event_log,
        store=store,
        invoker=invoker,
        host_config=host_config,
    )


class _Shutdown:
    """SIGINT/SIGTERM before, during (uvicorn forwards them) and after serving."""

    def __init__(self) -> None:
        self.requested = False
        self.server: uvicorn.Server | None = None
        self.workers: Workers | None = None

    def __call__(self, signum: int, _frame: FrameType | None) -> None:
        if not self.requested:
            log.info("Received %s; stopping", signal.Signals(signum).name)
        self.requested = True
        if self.workers is not None:
            self.workers.stopping.set()  # they get the signal too: their exit is expected
        if self.server is not None:
            self.server.should_exit = True


async def _announce(server: uvicorn.Server, args: argparse.Namespace) -> None:
    while not server.started and not server.should_exit:
        await asyncio.sleep(0.02)
    if not server.started:
        return
    if runs_http(args):
        log.info("Host started: http://%s:%d (Ctrl-C to stop)", args.host, args.port)
    else:
        log.info(
            "Host started: Event Hub and timer functions only; status http://%s:%d%s "
            "(Ctrl-C to stop)",
            args.host,
            args.port,
            STATUS_PATH,
        )


async def serve(
    args: argparse.Namespace,
    functions: list[IndexedFunction],
    host_config: HostConfig,
    shutdown: _Shutdown,
) -> int:
    loop = asyncio.get_running_loop()
    invoker = Invoker(loop=loop)
    host_retry = (
        RetryPolicy.from_mapping(host_config.retry) if host_config.retry else None
    )
    runners: list[ListenerGroup[Any]] = []
    if runs_triggers(args):
        eventhub_runner = build_eventhub_runner(functions, host_config, invoker)
        if eventhub_runner is not None:
            runners.append(eventhub_runner)
        if any(f.trigger_type == TIMER_TRIGGER for f in functions):
            runners.append(
                TimerRunner(functions, invoker=invoker, host_retry=host_retry)
            )
    # Without the HTTP functions every path but the admin status is a 404.
    served = functions if runs_http(args) else []

    config = uvicorn.Config(
        create_app(served, host_config.route_prefix, invoker, args.functions),
        host=args.host,
        port=args.port,
        log_config=None,
        access_log=False,
        lifespan="off",
        server_header=False,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    shutdown.server = server
    abandoned: list[str] = []
    try:
        if shutdown.requested:
            return 0
        for runner in runners:
            runner.start()
        announce = asyncio.create_task(_announce(server, args))
        await server.serve()
        announce.cancel()
    finally:
        # Stop the listeners while the loop still runs: async functions in flight need it.
        for runner in runners:
            abandoned += await loop.run_in_executor(None, runner.stop, STOP_TIMEOUT)
        invoker.shutdown()
        log.info("Host stopped")
    return 2 if abandoned else 0


def _log_tag(args: argparse.Namespace) -> str:
    if args.only:
        return worker_tag(args.only.split(","))
    return "" if args.functions == "all" else args.functions


def _only(
    functions: list[IndexedFunction], names: list[str]
) -> list[IndexedFunction] | None:
    """The named trigger functions (a worker's share), or None when one is unknown."""
    triggers = {f.name for f in functions if f.trigger_type != HTTP_TRIGGER}
    if unknown := sorted(set(names) - triggers):
        log.error(
            "--only: no Event Hub or timer function named %s (there are: %s)",
            ", ".join(unknown),
            ", ".join(sorted(triggers)),
        )
        return None
    return [f for f in functions if f.name in names]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.only is not None and args.functions != "triggers":
        print("--only goes with --functions triggers", file=sys.stderr)
        return 2
    if args.only:
        die_with_the_host()
    configure_logging(args.log_level, _log_tag(args))
    shutdown = _Shutdown()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, shutdown)

    if os.environ.get("COSMOS_VERIFY_TLS", "").lower() == "false":
        # The local Cosmos stand-in's certificate is self-signed, by design; one warning per
        # request would drown the log.
        warnings.filterwarnings("ignore", message="Unverified HTTPS request")
    root = Path(args.root).resolve()
    os.chdir(
        root
    )  # like `func start`: relative paths in settings are relative to the app root
    applied = load_local_settings(root / args.settings)
    if applied:
        log.info("Loaded %d setting(s) from %s", len(applied), args.settings)
    host_config = load_host_config(root)
    try:
        app = load_app(args.app, root)
    except Exception:
        log.exception("Cannot load the function app %r from %s", args.app, root)
        return 1
    functions = index_functions(app, os.environ, root)
    if args.only is not None:
        functions = _only(functions, args.only.split(","))
        if functions is None:
            return 1
    base_url = f"http://{args.host}:{args.port}"
    log.info("Functions%s:", "" if args.functions == "all" else f" ({args.functions})")
    if runs_http(args):
        for line in describe_routes(functions, host_config.route_prefix, base_url):
            log.info("  %s", line)
    if runs_triggers(args):
        for function in functions:
            if function.trigger_type != HTTP_TRIGGER:
                log.info("  %s: %s", function.name, function.trigger_type)

    workers = None
    if runs_triggers(args) and args.functions == "triggers" and args.only is None:
        args.root = str(root)  # the workers start in it already
        lower_priority(args.nice)  # before the workers start: they inherit it
        workers = shutdown.workers = Workers(args, worker_groups(functions))
        functions = []  # all of them run in the workers
        workers.start(on_exit=lambda: shutdown(signal.SIGTERM, None))
    code = asyncio.run(serve(args, functions, host_config, shutdown))
    if workers is not None:
        code = max(code, workers.stop(STOP_TIMEOUT + 5))
    if code == 2 or any(
        t.is_alive() and not t.daemon
        for t in threading.enumerate()
        if t is not threading.main_thread()
    ):
        # A function still runs (it cannot be interrupted): exit anyway, as the host kills
        # its worker, after what a normal exit runs (the projections' pending positions).
        atexit._run_exitfuncs()
        logging.shutdown()
        os._exit(0)
    return code


if __name__ == "__main__":
    sys.exit(main())
