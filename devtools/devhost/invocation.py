"""Calling user functions the way the Python worker does.

The worker runs every `async def` function on its one event loop and every plain
function in a thread pool. The dev host does the same: coroutines go to the loop the
ASGI server runs on (or a private loop when there is no server, e.g. in tests), so a
client created in one function can be reused by another.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import logging
import os
import threading
import time
import uuid
from typing import Any

import azure.functions as func
from azure.functions import _abc as functions_abc

from devtools.devhost.indexing import IndexedFunction

log = logging.getLogger("host")


class _TraceContext(functions_abc.TraceContext):
    def __init__(self) -> None:
        self._parent = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-00"

    @property
    def trace_state(self) -> str:
        return ""

    @property
    def trace_parent(self) -> str:
        return self._parent

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class _RetryContext(functions_abc.RetryContext):
    def __init__(
        self, retry_count: int, max_retry_count: int, exception: Any = None
    ) -> None:
        self._retry_count = retry_count
        self._max_retry_count = max_retry_count
        self._exception = exception

    @property
    def retry_count(self) -> int:
        return self._retry_count

    @property
    def max_retry_count(self) -> int:
        return self._max_retry_count

    @property
    def exception(self) -> Any:
        return self._exception


class InvocationContext(func.Context):
    """The `context` argument: invocation id, function name and directory, retry state."""

    _thread_local = threading.local()

    def __init__(self, function: IndexedFunction, retry_count: int = 0) -> None:
        self._invocation_id = str(uuid.uuid4())
        self._function = function
        self._trace = _TraceContext()
        max_retry = function.retry.max_retry_count if function.retry else 0
        self._retry = _RetryContext(retry_count, max_retry)

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> threading.local:  # type: ignore[override]
        # Annotated in the library as the class; the worker, too, returns an instance.
        return self._thread_local

    @property
    def function_name(self) -> str:
        return self._function.name

    @property
    def function_directory(self) -> str:
        return self._function.directory

    @property
    def trace_context(self) -> _TraceContext:
        return self._trace

    @property
    def retry_context(self) -> _RetryContext:
        return self._retry


def build_kwargs(
    function: IndexedFunction, trigger_value: Any, retry_count: int = 0
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {function.arg_name: trigger_value}
    if function.wants_context:
        kwargs["context"] = InvocationContext(function, retry_count)
    return kwargs


def default_thread_count() -> int:
    # PYTHON_THREADPOOL_THREAD_COUNT is the worker's own setting for its pool size.
    configured = os.environ.get("PYTHON_THREADPOOL_THREAD_COUNT", "")
    return (
        int(configured)
        if configured.isdigit() and int(configured) > 0
        else min(32, (os.cpu_count() or 1) + 4)
    )


class Invoker:
    """Runs user functions: sync ones in a thread pool, async ones on one event loop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop | None = None,
        max_workers: int | None = None,
    ) -> None:
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_workers or default_thread_count(),
            thread_name_prefix="function",
        )
        self._loop = loop
        self._own_loop_thread: threading.Thread | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            # No server loop (listeners used on their own): run async functions on a private loop.
            self._loop = asyncio.new_event_loop()
            self._own_loop_thread = threading.Thread(
                target=self._loop.run_forever, name="function-loop", daemon=True
            )
            self._own_loop_thread.start()
        return self._loop

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    async def call_async(
        self, function: IndexedFunction, kwargs: dict[str, Any]
    ) -> Any:
        """From the event loop (HTTP): await coroutines, run plain functions in the pool."""
        if function.is_async:
            return await function.user_function(**kwargs)
        loop = asyncio.get_running_loop()
        call = functools.partial(
            contextvars.copy_context().run, function.user_function, **kwargs
        )
        return await loop.run_in_executor(self.executor, call)

    def call_blocking(self, function: IndexedFunction, kwargs: dict[str, Any]) -> Any:
        """From a listener thread (Event Hubs, timers): wait for the function's result.

        Plain functions run right in the (daemon) listener thread, which is already one
        thread per partition or timer, so a function stuck at shutdown cannot block exit.
        """
        if function.is_async:
            future = asyncio.run_coroutine_threadsafe(
                function.user_function(**kwargs), self.loop
            )
            return future.result()
        return contextvars.copy_context().run(function.user_function, **kwargs)

    def execute(
        self,
        function: IndexedFunction,
        trigger_value: Any,
        retry_count: int,
        detail: str = "",
    ) -> None:
        """One invocation from a listener thread, logged as the host logs it
        (`Executed 'Functions.<name>' (Succeeded, <detail><n> ms)`); a failure propagates
        to the caller's retry policy."""
        started = time.perf_counter()
        self.call_blocking(function, build_kwargs(function, trigger_value, retry_count))
        log.info(
            "Executed 'Functions.%s' (Succeeded, %s%.0f ms)",
            function.name,
            detail,
            (time.perf_counter() - started) * 1000,
        )

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        if self._own_loop_thread is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._own_loop_thread.join(timeout=5)
