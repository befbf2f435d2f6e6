"""`--functions triggers`: the Event Hub and timer functions in worker processes of their own.

Flex Consumption scales every Event Hub function on its own instances, apart from the
HTTP functions and from each other. Here each Event Hub function runs in a worker
process (`--only <name>`), so one projection's threads share a GIL with its own
partitions only, not with every projection's; the timer functions, which wake for a
moment every few seconds, share one worker. This process only supervises them: it serves
the admin status, shares its log file and process group with them (a signal to the
group reaches every worker, as a crash of the host would), and stops all of them when
one exits on its own, so whoever supervises the host sees it stopped and restarts it.
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from devtools.devhost.indexing import EVENT_HUB_TRIGGER, TIMER_TRIGGER, IndexedFunction

log = logging.getLogger("host")

TIMERS = "timers"
# How much lower the workers' CPU priority is than the HTTP host's (a nice increment).
NICE = 10
PR_SET_PDEATHSIG = 1  # prctl(2)
AUTOGROUP = Path("/proc/self/autogroup")
AUTOGROUP_ENABLED = Path("/proc/sys/kernel/sched_autogroup_enabled")
HOST_PID = "DEVHOST_TRIGGERS_PID"  # the host a worker belongs to
# Where `devtools` is imported from: the workers run `-m <module>` from the app's root.
_TOOLS_ROOT = str(Path(__file__).resolve().parents[2])


def worker_groups(functions: Iterable[IndexedFunction]) -> list[list[str]]:
    """The functions each worker runs: an Event Hub function each, the timers together."""
    functions = list(functions)
    groups = [[f.name] for f in functions if f.trigger_type == EVENT_HUB_TRIGGER]
    timers = [f.name for f in functions if f.trigger_type == TIMER_TRIGGER]
    return groups + ([timers] if timers else [])


def worker_tag(names: list[str]) -> str:
    """How a worker tags its log lines: triggers/<its function>, or triggers/timers."""
    return f"triggers/{names[0] if len(names) == 1 else TIMERS}"


def main_module() -> str:
    """The module this process was started as (`python -m ...`): workers run the same."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    return spec.name if spec is not None else "devtools.devhost"


def die_with_the_host() -> None:
    """Called by a worker as it starts: killed with the host that started it (Linux's
    parent-death signal), as a crash of the host takes its workers with it. If the host
    is already gone (the worker was re-parented), it dies now: an orphan would go on
    reading its consumer group beside the host's replacement."""
    host = int(os.environ.get(HOST_PID, "0"))
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
            log.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
    except (OSError, AttributeError):
        pass  # not Linux: a signal to the process group still reaches the workers
    if host and os.getppid() != host:
        os.kill(os.getpid(), signal.SIGKILL)


def lower_priority(increment: int) -> None:
    """Let the HTTP functions have the CPU first, for this process and the workers it
    starts.

    In Azure the HTTP functions' instances share no CPU with the Event Hub and timer
    functions' (Flex Consumption scales them apart); on one machine the nearest thing is a
    lower priority for the triggers, so that projections do not take the cores from under
    a command between its steps. Linux (autogroup) shares the CPU first between sessions
    and applies a nice value only within its session: a host that leads its own session
    (as `make run` starts it) lowers the session's too, and then also takes the idle
    scheduling policy, so that a waking HTTP thread takes a core from a worker at once
    instead of after the worker's time slice. Neither forbids: the session still gets its
    (nice-weighted) share when the HTTP functions are busy."""
    increment = min(increment, 19)
    if increment <= 0:
        return
    os.nice(increment)
    if not _autogroup_enabled():
        return  # no autogroup (not Linux, or turned off): the process's nice value counts
    if os.getsid(0) != os.getpid():
        log.info(
            "not a session leader: the triggers' nice value counts in this session only"
        )
        return
    for _ in range(2):
        try:
            AUTOGROUP.write_text(str(increment))
            break
        except BlockingIOError:  # Linux limits these writes to one every 100 ms
            time.sleep(0.1)
        except OSError as exc:
            log.warning("could not lower this session's CPU priority: %s", exc)
            return
    else:
        return
    # Only with the session's own share: alone among other sessions' processes, an idle
    # task gets almost nothing (weight 3 against 1024) and projections would stall.
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


def _autogroup_enabled() -> bool:
    try:
        return AUTOGROUP.exists() and AUTOGROUP_ENABLED.read_text().strip() == "1"
    except OSError:
        return False


class Workers:
    """The worker processes of one triggers host."""

    def __init__(self, args: argparse.Namespace, groups: list[list[str]]) -> None:
        self.args = args
        self.groups = groups
        self.processes: list[subprocess.Popen[bytes]] = []
        self.stopping = threading.Event()

    def _argv(self, names: list[str]) -> list[str]:
        args = self.args
        return [
            sys.executable,
            "-m",
            main_module(),
            "--host",
            args.host,
            "--port",
            "0",  # its admin status is nobody's business: any free port
            "--app",
            args.app,
            "--settings",
            args.settings,
            "--root",
            args.root,
            "--log-level",
            args.log_level,
            "--functions",
            "triggers",
            "--only",
            ",".join(names),
        ]

    def start(self, on_exit: Callable[[], None]) -> None:
        """Start every worker; `on_exit` runs once if one exits before the host stops
        (`stopping` set by its signal handler or by `stop()`)."""
        sys.stdout.flush()
        path = os.environ.get("PYTHONPATH")
        env = {
            **os.environ,
            HOST_PID: str(os.getpid()),
            "PYTHONPATH": os.pathsep.join(p for p in (_TOOLS_ROOT, path) if p),
        }
        for names in self.groups:
            # Same stdout (the host's log) and the same process group.
            self.processes.append(subprocess.Popen(self._argv(names), env=env))
            log.info("Worker %d: %s", self.processes[-1].pid, ", ".join(names))
        threading.Thread(
            target=self._watch, args=(on_exit,), name="workers", daemon=True
        ).start()

    def _watch(self, on_exit: Callable[[], None]) -> None:
        while not self.stopping.wait(0.2):
            for process, names in zip(self.processes, self.groups):
                code = process.poll()
                if code is not None and not self.stopping.is_set():
                    log.error(
                        "Worker %d (%s) exited with %d; stopping the host",
                        process.pid,
                        ", ".join(names),
                        code,
                    )
                    on_exit()
                    return

    def stop(self, timeout: float) -> int:
        """Ask every worker to stop, wait up to `timeout`, kill the rest. 2 if any
        worker abandoned an invocation (or had to be killed), else 0."""
        self.stopping.set()
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + timeout
        code = 0
        for process in self.processes:
            try:
                returned = process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                returned = process.wait()
            code = max(code, 2 if returned not in (0, -15) else 0)
        return code
