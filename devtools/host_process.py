"""The dev host (`python -m devtools.devhost`) as the local stack runs it: child processes
on a fixed port with the stack's settings, started, stopped, killed and restarted."""

from __future__ import annotations

import functools
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Self

from devtools import dev_issuer
from devtools.devhost import STATUS_PATH as HOST_STATUS_PATH
from devtools.processes import (
    LOOPBACK,
    START_TIMEOUT,
    STOP_TIMEOUT,
    ManagedProcess,
    StackError,
    follow,
    free_port,
    port_in_use,
)


class DevHost:
    """The dev host (`python -m devtools.devhost`) on a fixed port with the stack's settings.

    Laid out as Flex Consumption runs the app: one child serves the HTTP functions on
    `port`, another runs the Event Hub and timer functions (each Event Hub function in a
    worker process of its own, devtools/devhost/workers.py), so the projections' threads
    never take the HTTP functions' GIL. The second child serves only the host's admin
    status, on a port of its own, which is how `start()` knows it is up.
    `split=False` runs everything in one child instead. All of them append to one log,
    each line tagged `http`, `triggers` or `triggers/<function>` (a worker).

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
                    functools.partial(self._answers, url), f"answering {url}", timeout
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
            target=follow,
            args=(self.log_path, offset, "[host] ", self._echo_stop),
            name="echo-host",
            daemon=True,
        ).start()

    def _stop_echo(self) -> None:
        if self._echo_stop is not None:
            time.sleep(0.2)  # let the follower print the last lines
            self._echo_stop.set()
            self._echo_stop = None
