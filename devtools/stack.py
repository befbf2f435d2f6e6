"""The local stack without Docker: Azurite, the Cosmos DB stand-in and the dev host.

Used by `make run` (`python -m devtools.stack run`) and by the test fixtures
(tests/conftest.py). Every child runs in its own session with its output in a log
file under the state dir; `stop()` terminates (then kills) each whole process group,
and on Linux the children also get SIGTERM if this process dies without cleaning up.

    with LocalStack(".local-test", fixed_ports=False) as stack:
        host = stack.start_devhost()
        ...  # stack.settings, host.base_url
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import importlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Self

from devtools import dev_issuer

REPO_ROOT = Path(__file__).resolve().parent.parent
NODE_BIN = REPO_ROOT / "node_modules" / ".bin"
LOOPBACK = "127.0.0.1"

# Well-known development credentials of Azurite and the Cosmos DB emulator (public).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
COSMOS_KEY = "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="

HOST_STATUS_PATH = "/admin/host/status"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 5.0
# A child restarted this many times within this many seconds is crash-looping: give up.
RESTART_BURST = 5
RESTART_WINDOW = 60.0
# How often the supervisor provisions again unprompted (rebuilding an emptied read model).
PROVISION_INTERVAL = 30.0


class StackError(RuntimeError):
    """A local service could not be started (the message carries its last log lines)."""


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


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """`count` distinct ports that were free a moment ago (held open together while picking)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in socks]


def free_port(host: str = LOOPBACK) -> int:
    return free_ports(1, host)[0]


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket() as sock:
        # SO_REUSEADDR: lingering TIME_WAIT connections (e.g. of a killed host) do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def port_accepts(port: int, host: str = LOOPBACK) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def azurite_connection_string(ports: StackPorts, host: str = LOOPBACK) -> str:
    # Explicit endpoints: the Event Hubs checkpoint-store packages reject UseDevelopmentStorage=true.
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint=http://{host}:{ports.blob}/{AZURITE_ACCOUNT};"
        f"QueueEndpoint=http://{host}:{ports.queue}/{AZURITE_ACCOUNT};"
        f"TableEndpoint=http://{host}:{ports.table}/{AZURITE_ACCOUNT};"
    )


def _death_signal_prefix() -> list[str]:
    # Children get SIGTERM if this process dies without stop() (e.g. SIGKILL of pytest).
    # The signal follows the forking *thread*, so only use it from the main thread.
    setpriv = shutil.which("setpriv")
    if (
        setpriv
        and sys.platform == "linux"
        and threading.current_thread() is threading.main_thread()
    ):
        return [setpriv, "--pdeathsig", "TERM", "--"]
    return []


class ManagedProcess:
    """One child process in its own process group, its output in a log file."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        *,
        log_path: Path,
        cwd: Path = REPO_ROOT,
        env: Mapping[str, str] | None = None,
        echo: bool = False,
    ) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.cwd = cwd
        self.env = dict(env) if env is not None else None
        self.echo = echo
        self.proc: subprocess.Popen[bytes] | None = None
        self._echo_stop: threading.Event | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, *, append: bool = False) -> None:
        if self.running:
            raise StackError(f"{self.name} is already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        offset = (
            self.log_path.stat().st_size if append and self.log_path.exists() else 0
        )
        with open(self.log_path, "ab" if append else "wb") as log:
            self.proc = subprocess.Popen(
                _death_signal_prefix() + self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches us only; we stop children in order
            )
        if self.echo:
            self._echo_stop = threading.Event()
            threading.Thread(
                target=_follow,
                args=(self.log_path, offset, f"[{self.name}] ", self._echo_stop),
                name=f"echo-{self.name}",
                daemon=True,
            ).start()

    def tail(self, lines: int = 30) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(deque(f, maxlen=lines))
        except FileNotFoundError:
            return ""

    def wait_until(
        self, ready: Callable[[], bool], what: str, timeout: float = START_TIMEOUT
    ) -> None:
        """Poll `ready` until true; fail early, with the log tail, if the process exits."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is None or self.proc.poll() is not None:
                code = self.proc.returncode if self.proc else None
                raise StackError(
                    self._failure(f"exited with code {code} before {what}")
                )
            if ready():
                return
            if time.monotonic() > deadline:
                raise StackError(self._failure(f"not {what} after {timeout:.0f}s"))
            time.sleep(0.05)

    def _failure(self, problem: str) -> str:
        tail = self.tail().rstrip() or "(empty)"
        return f"{self.name} {problem}\ncommand: {' '.join(self.argv)}\nlog {self.log_path}:\n{tail}"

    def _signal_group(self, sig: int) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM the process group, SIGKILL it if still alive after `timeout`."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.proc.wait()
        # The leader may be gone while a grandchild lives on in the group.
        self._signal_group(signal.SIGKILL)
        self._stop_echo()

    def kill(self) -> None:
        """SIGKILL the process group now (a crash, as tests simulate it)."""
        if self.proc is None:
            return
        self._signal_group(signal.SIGKILL)
        self.proc.wait()
        self._stop_echo()

    def _stop_echo(self) -> None:
        if self._echo_stop is not None:
            time.sleep(0.2)  # let the follower print the last lines
            self._echo_stop.set()
            self._echo_stop = None


def _follow(path: Path, offset: int, prefix: str, stop: threading.Event) -> None:
    """Print lines appended to `path` with a prefix (tail -f) until `stop` is set."""
    out: IO[str] = sys.stdout
    with open(path, "rb") as f:
        f.seek(offset)
        pending = b""
        while True:
            chunk = f.read(65536)
            if chunk:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    out.write(
                        prefix + line.decode(errors="replace").rstrip("\r") + "\n"
                    )
                out.flush()
            elif stop.is_set():
                if pending:
                    out.write(prefix + pending.decode(errors="replace") + "\n")
                    out.flush()
                return
            else:
                time.sleep(0.1)


class DevHost:
    """The dev host (`python -m devtools.devhost`) on a fixed port with the stack's settings.

    Laid out as Flex Consumption runs the app: one child serves the HTTP functions on
    `port`, another runs the Event Hub and timer functions, so the projections' threads
    never take the HTTP functions' CPU or GIL. The second child serves only the host's
    admin status, on a port of its own, which is how `start()` knows it is up.
    `split=False` runs everything in one child instead. Both children append to one log,
    each line tagged `http` or `triggers`.

    `kill()` then `start()`/`restart()` brings it back on the same port and state dir.
    `start()` starts whichever child is not running, so a supervisor restarts only the
    one that died.
    """

    def __init__(
        self,
        settings: Mapping[str, str],
        port: int,
        *,
        log_path: Path,
        extra_env: Mapping[str, str] | None = None,
        echo: bool = False,
        module: str = "devtools.devhost",
        split: bool = True,
    ) -> None:
        self.port = port
        self.base_url = f"http://{LOOPBACK}:{port}"
        self.log_path = log_path
        self.echo = echo
        self.module = module
        env = {
            **os.environ,
            **settings,
            # Each host publishes the development issuer's keys and reads them from itself.
            "AUTH_JWKS_URI": self.base_url + dev_issuer.JWKS_ROUTE,
            **(extra_env or {}),
            "PYTHONUNBUFFERED": "1",
        }
        # The log is shared, so the children never echo it themselves (see _start_echo).
        self.http = ManagedProcess(
            "host-http" if split else "host",
            self._argv(port, "http" if split else None),
            log_path=log_path,
            env=env,
        )
        self.triggers_port: int | None = None
        self.triggers = (
            ManagedProcess("host-triggers", [], log_path=log_path, env=env)
            if split
            else None
        )
        self._last_started = self.http
        self._started_once = False
        self._echo_stop: threading.Event | None = None

    def _argv(self, port: int, functions: str | None) -> list[str]:
        argv = [sys.executable, "-m", self.module, "--host", LOOPBACK]
        argv += ["--port", str(port)]
        return argv + (["--functions", functions] if functions else [])

    @property
    def children(self) -> list[ManagedProcess]:
        return [self.http] if self.triggers is None else [self.http, self.triggers]

    @property
    def process(self) -> ManagedProcess:
        """The child a supervisor reports on: one that is not running, else the one
        `start()` started last (`LocalStack.heal()` names it)."""
        return next((c for c in self.children if not c.running), self._last_started)

    @property
    def running(self) -> bool:
        """True only while every child runs: a host without its triggers is not whole."""
        return all(c.running for c in self.children)

    @property
    def pid(self) -> int | None:
        """The pid of the child serving `base_url`."""
        return self.http.pid

    def status_url(self, child: ManagedProcess) -> str:
        port = self.port if child is self.http else self.triggers_port
        return f"http://{LOOPBACK}:{port}{HOST_STATUS_PATH}"

    def start(self, timeout: float = START_TIMEOUT) -> Self:
        """Start every child that is not running, together, and wait until each answers."""
        starting = [c for c in self.children if not c.running]
        if self.http in starting and port_in_use(self.port):
            raise StackError(f"port {self.port} (dev host) is already in use")
        if not self._started_once:
            # Emptied once, then only appended to (O_APPEND), so neither child overwrites
            # the other's lines and the log spans restarts.
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self.log_path.write_bytes(b"")
            self._started_once = True
        if self.triggers is not None and self.triggers in starting:
            # Its status port is nobody's contract: a fresh one per start is never taken.
            self.triggers_port = free_port()
            self.triggers.argv = self._argv(self.triggers_port, "triggers")
        self._start_echo()
        try:
            for child in starting:
                child.start(append=True)
            for child in starting:
                url = self.status_url(child)
                child.wait_until(
                    lambda url=url: self._answers(url), f"answering {url}", timeout
                )
        except BaseException:
            for child in starting:
                child.stop()
            raise
        if starting:
            self._last_started = starting[0]
        return self

    @staticmethod
    def _answers(url: str) -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        # SIGTERM every child first: they drain in parallel, so a stop takes the slowest
        # child's time, not the sum.
        for child in self.children:
            if child.running:
                child._signal_group(signal.SIGTERM)
        for child in self.children:
            child.stop(timeout)
        self._stop_echo()

    def kill(self) -> None:
        for child in self.children:
            child.kill()
        self._stop_echo()

    def restart(self, timeout: float = START_TIMEOUT) -> Self:
        self.stop()
        return self.start(timeout)

    def tail(self, lines: int = 30) -> str:
        return self.http.tail(lines)

    def _start_echo(self) -> None:
        # One follower for the shared log: one per child would print every line twice.
        if not self.echo or self._echo_stop is not None:
            return
        self._echo_stop = threading.Event()
        offset = self.log_path.stat().st_size
        threading.Thread(
            target=_follow,
            args=(self.log_path, offset, "[host] ", self._echo_stop),
            name="echo-host",
            daemon=True,
        ).start()

    def _stop_echo(self) -> None:
        if self._echo_stop is not None:
            time.sleep(0.2)  # let the follower print the last lines
            self._echo_stop.set()
            self._echo_stop = None


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
        restarted = []
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


if __name__ == "__main__":
    sys.exit(main())
