"""Run the local stack without Docker: Azurite, the Cosmos DB stand-in and the dev host.

`make run` calls `python -m devtools.stack run [--port 7071] [--state-dir .local]
[--no-host]` (devtools/stack.py hands its command line here): fixed ports, logs
streamed, a child that dies restarted, everything stopped on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from devtools.host_process import HOST_STATUS_PATH, DevHost
from devtools.processes import LOOPBACK, REPO_ROOT, StackError
from devtools.stack import LocalStack, StackPorts


class _Stop(Exception):
    """Raised from the SIGTERM/SIGHUP handler so `finally` blocks stop the children."""


def _raise_stop(signum: int, _frame: object) -> None:
    raise _Stop(signal.Signals(signum).name)


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    previous = {
        sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGTERM, signal.SIGHUP)
    }
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _banner(stack: LocalStack, host: DevHost | None, started_in: float) -> str:
    p = stack.ports
    lines = [
        f"Local stack up in {started_in:.1f}s. Ctrl-C stops everything.",
        f"  Azurite   blob http://{LOOPBACK}:{p.blob}  queue :{p.queue}  table :{p.table}",
        f"  Cosmos    {stack.cosmos_endpoint}  (emulator key, self-signed TLS, data in state/cosmos)",
        f"  state     {stack.state_dir}  (*.log, settings.json, orders.db, events.db)",
    ]
    if host is not None:
        api = f"{host.base_url}/api"
        lines += [
            f"  API       {api}/...   status {host.base_url}{HOST_STATUS_PATH}",
            "  try:",
            f"    curl -si -X POST {api}/customers -H 'content-type: application/json' \\",
            '      -d \'{"name": "Ada", "email": "ada@example.com", "creditLimit": 1000}\'',
        ]
    return "\n".join(lines)


def run(port: int, state_dir: Path, *, with_host: bool = True) -> int:
    """`make run`: fixed ports, logs streamed, everything stopped on Ctrl-C/SIGTERM."""
    started = time.monotonic()
    stack = LocalStack(
        state_dir, fixed_ports=True, ports=StackPorts(host=port), echo=True
    )
    with _stop_on_signals():
        try:
            stack.start()
            host = stack.start_devhost(port) if with_host else None
            print(_banner(stack, host, time.monotonic() - started), flush=True)
            # Supervise: a child that dies is restarted while the others keep serving, so
            # an outage can be rehearsed (kill the Cosmos stand-in, watch the read model heal).
            while True:
                time.sleep(0.5)
                stack.heal()
        except StackError as exc:
            print(f"\nlocal stack: {exc}", file=sys.stderr)
            return 1
        except (KeyboardInterrupt, _Stop):
            print("\nstopping local stack...", flush=True)
            return 0
        finally:
            # A second Ctrl-C or SIGTERM must not interrupt the cleanup.
            previous = {
                sig: signal.signal(sig, signal.SIG_IGN)
                for sig in (signal.SIGINT, signal.SIGTERM)
            }
            stack.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.stack", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser(
        "run", help="start Azurite, the Cosmos stand-in and the dev host (Ctrl-C stops)"
    )
    run_p.add_argument(
        "--port", type=int, default=7071, help="dev host port (default 7071)"
    )
    run_p.add_argument(
        "--state-dir",
        type=Path,
        default=REPO_ROOT / ".local",
        help="logs and databases",
    )
    run_p.add_argument(
        "--no-host", action="store_true", help="services only, no dev host"
    )
    args = parser.parse_args(argv)
    return run(args.port, args.state_dir, with_host=not args.no_host)
