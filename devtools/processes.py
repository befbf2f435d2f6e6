"""Child processes of the local stack: each in its own process group with its output in a
log file, stopped as a group (SIGTERM, then SIGKILL); and the port helpers they need.

On Linux the children also get SIGTERM if this process dies without cleaning up.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

REPO_ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 5.0


class StackError(RuntimeError):
    """A local service could not be started (the message carries its last log lines)."""


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
                target=follow,
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


def follow(path: Path, offset: int, prefix: str, stop: threading.Event) -> None:
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
