"""Import the function app and index its functions the way the Python worker does."""

from __future__ import annotations

import enum
import importlib
import inspect
import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import azure.functions as func

from devtools.devhost.retry import RetryPolicy
from devtools.devhost.settings import UnresolvedSettingError, resolve_all

log = logging.getLogger("host")

HTTP_TRIGGER = "httpTrigger"
EVENT_HUB_TRIGGER = "eventHubTrigger"
TIMER_TRIGGER = "timerTrigger"
SUPPORTED_TRIGGERS = (HTTP_TRIGGER, EVENT_HUB_TRIGGER, TIMER_TRIGGER)


@dataclass
class IndexedFunction:
    """One function of the app, with its trigger binding resolved against the settings."""

    name: str
    trigger_type: str
    trigger: dict[str, Any]
    user_function: Callable[..., Any]
    directory: str
    retry: RetryPolicy | None = None
    other_bindings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def arg_name(self) -> str:
        return self.trigger["name"]

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.user_function)

    @property
    def wants_context(self) -> bool:
        # The worker passes the invocation context to a parameter named `context`.
        return "context" in inspect.signature(self.user_function).parameters


def _plain(value: Any) -> Any:
    """Binding dicts hold enums (direction, methods, auth level...); keep their values."""
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def load_app(
    spec: str = "function_app:app", root: str | Path | None = None
) -> func.FunctionRegister:
    """Import `module:attribute` with the app root first on sys.path.

    Without an attribute (or when it is missing) the module's first FunctionRegister
    instance is used, which is how the worker finds the app.
    """
    root_path = str(Path(root or os.getcwd()).resolve())
    if root_path in sys.path:
        sys.path.remove(root_path)
    sys.path.insert(0, root_path)
    module_name, _, attribute = spec.partition(":")
    module = importlib.import_module(module_name)
    if attribute and isinstance(
        getattr(module, attribute, None), func.FunctionRegister
    ):
        return getattr(module, attribute)
    for value in vars(module).values():
        if isinstance(value, func.FunctionRegister):
            return value
    raise LookupError(
        f"no FunctionApp instance in module {module_name!r} (looked for {spec!r})"
    )


def is_disabled(name: str, environ: Mapping[str, str]) -> bool:
    """The host's `AzureWebJobs.<FunctionName>.Disabled` app setting."""
    value = environ.get(f"AzureWebJobs.{name}.Disabled", "")
    return value.strip().lower() in {"1", "true"}


def index_functions(
    app: func.FunctionRegister,
    environ: Mapping[str, str] | None = None,
    directory: str | Path | None = None,
) -> list[IndexedFunction]:
    """Every enabled function with a supported trigger; others are logged and skipped."""
    environ = os.environ if environ is None else environ
    directory = str(Path(directory or os.getcwd()).resolve())
    indexed: list[IndexedFunction] = []
    seen: set[str] = set()
    for function in app.get_functions():
        # The library names a function after its Python function unless told otherwise.
        name = function.get_function_name() or function.get_user_function().__name__
        if name in seen:
            log.error(
                "Function '%s' is defined twice; the second definition is ignored", name
            )
            continue
        seen.add(name)
        if is_disabled(name, environ):
            log.info("Function '%s' is disabled (AzureWebJobs.%s.Disabled)", name, name)
            continue
        trigger = function.get_trigger()
        if trigger is None:
            log.error("Function '%s' has no trigger; skipped", name)
            continue
        try:
            trigger_dict = resolve_all(_plain(trigger.get_dict_repr()), environ)
        except UnresolvedSettingError as exc:
            # The host marks such a function as errored and runs the others.
            log.error("Function '%s' is in error: %s", name, exc)
            continue
        if trigger_dict["type"] not in SUPPORTED_TRIGGERS:
            log.warning(
                "Function '%s': trigger type %s is not supported by the dev host; skipped",
                name,
                trigger_dict["type"],
            )
            continue
        others = [
            _plain(b.get_dict_repr())
            for b in function.get_bindings()
            if b is not trigger and not (b.type == "http" and b.name == "$return")
        ]
        for binding in others:
            log.warning(
                "Function '%s': %s binding '%s' is not supported by the dev host",
                name,
                binding.get("type"),
                binding.get("name"),
            )
        retry_setting = function.get_settings_dict("retry_policy")
        try:
            retry = RetryPolicy.from_mapping(retry_setting) if retry_setting else None
        except ValueError as exc:
            log.error("Function '%s' is in error: invalid retry policy: %s", name, exc)
            continue
        indexed.append(
            IndexedFunction(
                name=name,
                trigger_type=trigger_dict["type"],
                trigger=trigger_dict,
                user_function=function.get_user_function(),
                directory=directory,
                retry=retry,
                other_bindings=others,
            )
        )
    return indexed
