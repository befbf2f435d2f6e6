"""The local stack without Docker: Azurite, the Cosmos DB stand-in and the dev host.

Used by `make run` (`python -m devtools.stack run`, devtools/stack_cli.py) and by the
test fixtures (tests/conftest.py). Every child (devtools/processes.py; the dev host:
devtools/host_process.py) runs in its own session with its output in a log file under
the state dir; `stop()` terminates (then kills) each whole process group.

    with LocalStack(".local-test", fixed_ports=False) as stack:
        host = stack.start_devhost()
        ...  # stack.settings, host.base_url
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import shutil
import sys
import threading
import time
import warnings
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from devtools import dev_issuer, emulators
from devtools.emulators import COSMOS_KEY
from devtools.host_process import DevHost
from devtools.processes import (
    LOOPBACK,
    REPO_ROOT,
    START_TIMEOUT,
    ManagedProcess,
    StackError,
    free_ports,
    port_accepts,
    port_in_use,
)

NODE_BIN = REPO_ROOT / "node_modules" / ".bin"
# A child restarted this many times within this many seconds is crash-looping: give up.
RESTART_BURST = 5
RESTART_WINDOW = 60.0
# How often the supervisor provisions again unprompted (rebuilding an emptied read model).
PROVISION_INTERVAL = 30.0


@dataclass(frozen=True)
class StackPorts:
    blob: int = 10000
    queue: int = 10001
    table: int = 10002
    cosmos: int = 8081
    host: int = 7071

    @classmethod
    def free(cls) -> StackPorts:
        return cls(*free_ports(5))


def azurite_connection_string(ports: StackPorts, host: str = LOOPBACK) -> str:
    return emulators.azurite_connection_string(
        host, blob=ports.blob, queue=ports.queue, table=ports.table
    )


class LocalStack:
    """Azurite + the Cosmos DB stand-in (+ dev hosts started through it), as a context manager.

    fixed_ports=True uses `ports` (default: the emulators' standard ports and 7071);
    fixed_ports=False picks free ports, so test runs and `make run` can coexist.
    """

    def __init__(
        self,
        state_dir: Path | str = REPO_ROOT / ".local",
        *,
        fixed_ports: bool = True,
        ports: StackPorts | None = None,
        echo: bool = False,
        provision: bool = True,
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.ports = ports or (StackPorts() if fixed_ports else StackPorts.free())
        self.fixed_ports = fixed_ports
        self.echo = echo
        self.provision = provision
        self.processes: list[ManagedProcess] = []
        self.devhosts: list[DevHost] = []
        self.started = False
        self.restarts: deque[float] = deque(maxlen=RESTART_BURST)  # monotonic times
        # heal() and stop() may run on different threads (a supervisor and the caller).
        self._lifecycle = threading.RLock()
        self._unprovisioned: set[str] = set()  # services restarted, not yet provisioned
        self.provision_interval = PROVISION_INTERVAL
        self._provisioned_at = time.monotonic()

    @property
    def azurite_connection_string(self) -> str:
        return azurite_connection_string(self.ports)

    @property
    def cosmos_endpoint(self) -> str:
        return f"https://{LOOPBACK}:{self.ports.cosmos}/"

    @property
    def settings(self) -> dict[str, str]:
        """App settings (environment variables) that point the app at these services."""
        storage = self.azurite_connection_string
        return {
            "FUNCTIONS_WORKER_RUNTIME": "python",
            "AzureWebJobsStorage": storage,
            "DeadLetterStorage": storage,
            "COSMOS_ENDPOINT": self.cosmos_endpoint,
            "COSMOS_KEY": COSMOS_KEY,
            "COSMOS_VERIFY_TLS": "false",
            "EVENT_TRANSPORT": "local",
            "EVENTHUB_NAME": "domain-events",
            "LOCAL_EVENT_LOG_PATH": str(self.state_dir / "events.db"),
            "SQLITE_PATH": str(self.state_dir / "orders.db"),
            # Tokens of the development issuer, checked as Entra ID tokens are in Azure.
            **dev_issuer.settings(
                self.state_dir, f"http://{LOOPBACK}:{self.ports.host}"
            ),
            "DEV_ISSUER_JWKS": str(dev_issuer.ensure_key(self.state_dir)),
        }

    def _azurite(self) -> ManagedProcess:
        p = self.ports
        argv = [
            str(NODE_BIN / "azurite"),
            "--silent",
            "--skipApiVersionCheck",
            "--loose",
            "--disableTelemetry",
            # On disk, like the Cosmos stand-in's documents: checkpoints and read model
            # survive a restart together, so `make run` resumes instead of replaying.
            "--location",
            str(self.state_dir / "azurite"),
            "--blobHost",
            LOOPBACK,
            "--blobPort",
            str(p.blob),
            "--queueHost",
            LOOPBACK,
            "--queuePort",
            str(p.queue),
            "--tableHost",
            LOOPBACK,
            "--tablePort",
            str(p.table),
        ]
        # cwd = state dir: anything Azurite might write lands there, not in the repo.
        return ManagedProcess(
            "azurite",
            argv,
            log_path=self.state_dir / "azurite.log",
            cwd=self.state_dir,
            echo=self.echo,
        )

    def _cosmos(self) -> ManagedProcess:
        argv = [
            "node",
            str(REPO_ROOT / "devtools" / "cosmos_server.js"),
            "--host",
            LOOPBACK,
            "--port",
            str(self.ports.cosmos),
            # Every acknowledged write is journaled first: a killed stand-in comes back
            # with its documents, as Cosmos DB does after an outage.
            "--data-dir",
            str(self.state_dir / "cosmos"),
        ]
        return ManagedProcess(
            "cosmos", argv, log_path=self.state_dir / "cosmos.log", echo=self.echo
        )

    def _check_prerequisites(self) -> None:
        if shutil.which("node") is None:
            raise StackError(
                "node is not on PATH (the local stack needs Node.js >= 18)"
            )
        if (
            not (NODE_BIN / "azurite").exists()
            or not (REPO_ROOT / "node_modules" / "@vercel").exists()
        ):
            raise StackError(
                f"npm packages missing in {REPO_ROOT / 'node_modules'}: run `npm ci` (or `make run`)"
            )
        if self.fixed_ports:
            named = [
                ("azurite blob", self.ports.blob),
                ("azurite queue", self.ports.queue),
                ("azurite table", self.ports.table),
                ("cosmos", self.ports.cosmos),
            ]
            taken = [f"{port} ({name})" for name, port in named if port_in_use(port)]
            if taken:
                raise StackError(
                    f"port(s) already in use: {', '.join(taken)}. Is another `make run` (or an "
                    "emulator) running? Stop it, or find it with `ss -ltnp`."
                )

    def start(self, timeout: float = START_TIMEOUT) -> Self:
        if self.started:
            return self
        self._check_prerequisites()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.started = True
        atexit.register(self.stop)  # safety net; stop() is idempotent
        try:
            azurite, cosmos = self._azurite(), self._cosmos()
            for proc in (
                azurite,
                cosmos,
            ):  # start both, then wait: they boot in parallel
                self.processes.append(proc)
                proc.start()
            for proc in (azurite, cosmos):
                self._wait_listening(proc, timeout)
            (self.state_dir / "settings.json").write_text(
                json.dumps(self.settings, indent=2) + "\n"
            )
            if self.provision:
                self._provision()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_listening(self, proc: ManagedProcess, timeout: float) -> None:
        ports = {
            "azurite": (self.ports.blob, self.ports.queue, self.ports.table),
            "cosmos": (self.ports.cosmos,),
        }[proc.name]
        proc.wait_until(
            lambda: all(port_accepts(p) for p in ports),
            "listening on its port(s)",
            timeout,
        )

    def heal(self, timeout: float = START_TIMEOUT) -> list[str]:
        """Restart every child that died, then provision again; returns their names.

        Both emulators keep their data on disk; provisioning again recreates anything
        missing (and rebuilds an empty read model from the outbox) while the rest of the
        stack keeps serving."""
        restarted: list[str] = []
        with self._lifecycle:
            if not self.started:
                return restarted
            for proc in self.processes:
                if proc.proc is not None and not proc.running:
                    self._note_restart(proc)
                    proc.start(append=True)
                    self._wait_listening(proc, timeout)
                    restarted.append(proc.name)
                    self._unprovisioned |= {proc.name}
            if time.monotonic() >= self._provisioned_at + self.provision_interval:
                # Also now and then with nothing restarted: a read model emptied while
                # the stack runs (its database deleted, say) is rebuilt from the outbox.
                self._unprovisioned |= {"read model check"}
            if self._unprovisioned and self.provision:
                self._provisioned_at = time.monotonic()
                try:
                    self._provision()
                    self._unprovisioned = set()
                except Exception as exc:  # noqa: BLE001 - retried on the next pass
                    print(
                        f"local stack: provisioning after a restart failed ({exc!r}); "
                        "retrying",
                        file=sys.stderr,
                        flush=True,
                    )
            for host in self.devhosts:
                if host.process.proc is not None and not host.running:
                    self._note_restart(host.process)
                    host.start(timeout)
                    restarted.append(host.process.name)
        return restarted

    def _note_restart(self, proc: ManagedProcess) -> None:
        now = time.monotonic()
        if (
            len(self.restarts) == RESTART_BURST
            and now - self.restarts[0] < RESTART_WINDOW
        ):
            raise StackError(
                proc._failure(
                    f"keeps exiting ({RESTART_BURST} restarts in {RESTART_WINDOW:.0f}s); giving up"
                )
            )
        self.restarts.append(now)
        code = proc.proc.returncode if proc.proc else None
        print(
            f"local stack: {proc.name} exited (code {code}); restarting it "
            f"(log {proc.log_path})",
            file=sys.stderr,
            flush=True,
        )

    @contextlib.contextmanager
    def supervised(self, interval: float = 0.5) -> Iterator[threading.Thread]:
        """Run `heal()` every `interval` seconds on a thread while the block runs."""
        done = threading.Event()

        def loop() -> None:
            while not done.wait(interval):
                try:
                    self.heal()
                except StackError as exc:
                    print(f"local stack: {exc}", file=sys.stderr, flush=True)
                    return
                except Exception as exc:  # noqa: BLE001 - keep supervising; say what failed
                    print(
                        f"local stack: healing failed: {exc!r}",
                        file=sys.stderr,
                        flush=True,
                    )

        thread = threading.Thread(target=loop, name="stack-supervisor", daemon=True)
        thread.start()
        try:
            yield thread
        finally:
            done.set()
            thread.join()

    def cosmos_client(self) -> Any:
        """An SDK client of this stack's Cosmos stand-in, for tests and tools that look at
        the read model directly (emulator key, self-signed certificate)."""
        from azure.cosmos import CosmosClient

        return CosmosClient(
            self.cosmos_endpoint, credential=COSMOS_KEY, connection_verify=False
        )

    def read_model(self) -> Any:
        """The read model's database (the app's COSMOS_DATABASE default)."""
        return self.cosmos_client().get_database_client("orders")

    def token(
        self,
        roles: tuple[str, ...] = ("Orders.Admin",),
        subject: str = "local-admin",
        lifetime: int = 4 * 3600,
    ) -> str:
        """An access token of the development issuer this stack's app trusts."""
        return dev_issuer.mint(self.state_dir, list(roles), subject, lifetime)

    def service(self, name: str) -> ManagedProcess:
        """A running service by name ('azurite' or 'cosmos'), for fault tests."""
        return next(p for p in self.processes if p.name == name)

    def _provision(self) -> None:
        # devtools.provision creates the Cosmos containers, the dead-letter container and the
        # SQL schema, and rebuilds an empty read model from the outbox.
        try:
            module = importlib.import_module("devtools.provision")
        except ModuleNotFoundError as exc:
            if exc.name != "devtools.provision":
                raise
            return
        with warnings.catch_warnings():
            # verify=False against the self-signed stand-in is intended; one warning per request.
            warnings.filterwarnings("ignore", message="Unverified HTTPS request")
            module.provision(self.settings)

    def start_devhost(
        self,
        port: int | None = None,
        extra_env: Mapping[str, str] | None = None,
        *,
        module: str = "devtools.devhost",
        timeout: float = START_TIMEOUT,
        split: bool = True,
    ) -> DevHost:
        """Start a dev host against this stack (port None: the stack's host port) and wait for it.

        split=False runs the HTTP and the trigger functions in one process (as before the
        host ran them apart), e.g. to compare the two."""
        if not self.started:
            raise StackError("start the stack before the dev host")
        port = port if port is not None else self.ports.host
        log_name = "devhost.log" if port == self.ports.host else f"devhost-{port}.log"
        host = DevHost(
            self.settings,
            port,
            log_path=self.state_dir / log_name,
            extra_env=extra_env,
            echo=self.echo,
            module=module,
            split=split,
        )
        self.devhosts.append(host)
        host.start(timeout)
        return host

    def stop(self) -> None:
        """Stop dev hosts, then the services; idempotent."""
        with self._lifecycle:
            self.started = False
            for host in reversed(self.devhosts):
                host.stop()
            for proc in reversed(self.processes):
                proc.stop()
            self.devhosts.clear()
            self.processes.clear()
        atexit.unregister(self.stop)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    from devtools.stack_cli import main

    sys.exit(main())
