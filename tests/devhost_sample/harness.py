"""Run the dev host on a copy of the sample app as a subprocess, and read what it recorded."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Self

from devtools.devhost import STATUS_PATH
from devtools.processes import REPO_ROOT, free_port

SAMPLE_DIR = Path(__file__).resolve().parent


def copy_sample(destination: Path) -> Path:
    """The sample app in a temp dir, so the tests write nothing into the repo."""
    return Path(
        shutil.copytree(
            SAMPLE_DIR,
            destination,
            ignore=shutil.ignore_patterns("__pycache__", "*.jsonl"),
        )
    )


def wait_for(
    condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.05
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def read_records(directory: Path, name: str) -> list[dict[str, Any]]:
    path = directory / f"{name}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class HostProcess:
    """`python -m devtools.devhost` in `app_dir` (its cwd) on a free port.

    `functions` (http, triggers) runs that subset only; None leaves the host's default.
    """

    def __init__(
        self,
        app_dir: Path,
        env: Mapping[str, str],
        port: int | None = None,
        functions: str | None = None,
    ) -> None:
        self.app_dir = app_dir
        self.functions = functions
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            **env,
            "PYTHONPATH": str(REPO_ROOT),
            "PYTHONUNBUFFERED": "1",
        }
        self.log_path = app_dir / "devhost.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> HostProcess:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "devtools.devhost",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    *(["--functions", self.functions] if self.functions else []),
                ],
                cwd=self.app_dir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            wait_for(self._ready, timeout, f"the dev host on port {self.port}")
        except AssertionError:
            self.kill()
            raise AssertionError(f"dev host did not start:\n{self.log()}") from None
        return self

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(
                f"dev host exited with {self.proc.returncode}:\n{self.log()}"
            )
        try:
            with urllib.request.urlopen(self.base_url + STATUS_PATH, timeout=1) as resp:
                return resp.status == 200 and json.loads(resp.read()) == {
                    "state": "Running",
                    "functions": self.functions or "all",
                }
        except OSError:
            return False

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM and wait: the clean shutdown path."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"dev host ignored SIGTERM for {timeout}s:\n{self.log()}"
            ) from None

    def kill(self) -> None:
        """SIGKILL: a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log(self) -> str:
        return (
            self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        )

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        finally:
            self.kill()
