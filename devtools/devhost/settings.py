"""App settings (local.settings.json), host.json options, binding expressions and timespans."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DEFAULT_ROUTE_PREFIX = "api"
# Defaults of the Event Hubs extension (EventHubOptions) when host.json says nothing.
DEFAULT_MAX_EVENT_BATCH_SIZE = 100
DEFAULT_MAX_WAIT_TIME = 60.0


def load_local_settings(
    path: str | Path, environ: MutableMapping[str, str] | None = None
) -> dict[str, str]:
    """Copy `Values` of local.settings.json into the environment, as `func start` does.

    Variables already in the environment win (so a test or a shell can override a value).
    Returns the settings that were applied; a missing file applies nothing.
    """
    environ = os.environ if environ is None else environ
    path = Path(path)
    if not path.is_file():
        return {}
    document = json.loads(path.read_text(encoding="utf-8-sig"))
    if document.get("IsEncrypted"):
        raise ValueError(
            f"{path}: encrypted local settings are not supported by the dev host"
        )
    applied: dict[str, str] = {}
    for name, value in (document.get("Values") or {}).items():
        if name in environ:
            continue
        text = (
            ""
            if value is None
            else value
            if isinstance(value, str)
            else json.dumps(value)
        )
        environ[name] = text
        applied[name] = text
    return applied


def _ci(mapping: Mapping[str, Any] | None, *path: str) -> Any:
    """Case-insensitive lookup along a path of keys (the host reads host.json that way)."""
    node: Any = mapping
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = next((v for k, v in node.items() if k.lower() == key.lower()), None)
    return node


@dataclass(frozen=True)
class HostConfig:
    """The host.json options the dev host honours."""

    route_prefix: str = DEFAULT_ROUTE_PREFIX
    max_event_batch_size: int = DEFAULT_MAX_EVENT_BATCH_SIZE
    min_event_batch_size: int = 1
    max_wait_time: float = DEFAULT_MAX_WAIT_TIME
    initial_offset: str = "fromStart"
    retry: Mapping[str, Any] | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)


def parse_host_config(document: Mapping[str, Any]) -> HostConfig:
    prefix = _ci(document, "extensions", "http", "routePrefix")
    max_batch = _ci(document, "extensions", "eventHubs", "maxEventBatchSize")
    min_batch = _ci(document, "extensions", "eventHubs", "minEventBatchSize")
    max_wait = _ci(document, "extensions", "eventHubs", "maxWaitTime")
    initial = _ci(document, "extensions", "eventHubs", "initialOffsetOptions", "type")
    retry = _ci(document, "retry")
    return HostConfig(
        route_prefix=DEFAULT_ROUTE_PREFIX if prefix is None else str(prefix).strip("/"),
        max_event_batch_size=int(max_batch)
        if max_batch is not None
        else DEFAULT_MAX_EVENT_BATCH_SIZE,
        min_event_batch_size=int(min_batch) if min_batch is not None else 1,
        max_wait_time=parse_timespan(max_wait)
        if max_wait is not None
        else DEFAULT_MAX_WAIT_TIME,
        initial_offset=str(initial) if initial else "fromStart",
        retry=retry if isinstance(retry, Mapping) else None,
        raw=document,
    )


def load_host_config(root: str | Path) -> HostConfig:
    """Read `host.json` in the app root (defaults when it is missing)."""
    path = Path(root) / "host.json"
    if not path.is_file():
        return HostConfig()
    return parse_host_config(json.loads(path.read_text(encoding="utf-8-sig")))


_EXPRESSION = re.compile(r"%([^%\s]+)%")


class UnresolvedSettingError(ValueError):
    """A `%NAME%` binding expression names a setting that is not set."""


def resolve_expression(value: str, environ: Mapping[str, str] | None = None) -> str:
    """Replace each `%NAME%` with the app setting NAME (the host's binding expressions)."""
    environ = os.environ if environ is None else environ

    def setting(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            raise UnresolvedSettingError(f"'%{name}%' does not resolve to a value")
        return environ[name]

    return _EXPRESSION.sub(setting, value)


def resolve_all(value: Any, environ: Mapping[str, str] | None = None) -> Any:
    """`resolve_expression` on every string inside a binding definition."""
    if isinstance(value, str):
        return resolve_expression(value, environ)
    if isinstance(value, Mapping):
        return {k: resolve_all(v, environ) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [resolve_all(v, environ) for v in value]
    return value


_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d+):(\d{1,2})(?::(\d{1,2})(?:\.(\d+))?)?$")


def parse_timespan(value: str | float) -> float:
    """Seconds in a .NET TimeSpan string ("HH:MM:SS", "D.HH:MM:SS.fff", "HH:MM") or a number."""
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    match = _TIMESPAN.match(text)
    if not match:
        raise ValueError(f"not a timespan: {value!r} (expected HH:MM:SS)")
    days, hours, minutes, seconds, fraction = match.groups()
    total = (
        int(days or 0) * 86400
        + int(hours) * 3600
        + int(minutes) * 60
        + int(seconds or 0)
    )
    return total + (float(f"0.{fraction}") if fraction else 0.0)


def net_datetime(value: datetime, *, utc_kind: bool) -> str:
    """A DateTime as Newtonsoft.Json writes it (7 fractional digits at most, zeros trimmed).

    The extension passes `EnqueuedTime.DateTime`, whose Kind is Unspecified, so it has no
    'Z' and the library parses it into a naive datetime (in UTC) - as in Azure.
    """
    value = value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += "." + f"{value.microsecond:06d}".rstrip("0")
    return text + ("Z" if utc_kind else "")
