"""The inline route constraints of Azure Functions (ASP.NET Core) route templates.

`{id:int}`, `{n:range(1,10)}`, `{code:regex(^\\d+$)}`...: each becomes a `Constraint`, a
check over the percent-decoded segment value, with ASP.NET's semantics (int is 32-bit,
regex is unanchored and case-insensitive, guid takes the N, D, B and P formats).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime


class RouteTemplateError(ValueError):
    """A route template the host would refuse."""


_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_INTEGER = re.compile(r"^\s*[+-]?\d+\s*$")
_NUMBER = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$")
_GUID = re.compile(
    r"^(?:[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    r"|\{[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\}"
    r"|\([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\))$",
    re.IGNORECASE,
)
_ALPHA = re.compile(r"^[a-z]*$", re.IGNORECASE)

Check = Callable[[str], bool]


@dataclass(frozen=True)
class Constraint:
    text: str
    check: Check = field(compare=False, repr=False)


def _integer(value: str, bounds: tuple[int, int]) -> int | None:
    if not _INTEGER.match(value):
        return None
    number = int(value)
    return number if bounds[0] <= number <= bounds[1] else None


def _datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value.strip())
    except ValueError:
        return False
    return True


# Constraints without arguments.
_SIMPLE: dict[str, Check] = {
    "int": lambda v: _integer(v, _INT32) is not None,
    "long": lambda v: _integer(v, _INT64) is not None,
    "bool": lambda v: v.strip().lower() in {"true", "false"},
    "guid": lambda v: bool(_GUID.match(v.strip())),
    "alpha": lambda v: bool(_ALPHA.match(v)),
    "datetime": _datetime,
    "decimal": lambda v: bool(_NUMBER.match(v)) and "e" not in v.lower(),
    "double": lambda v: bool(_NUMBER.match(v)),
    "float": lambda v: bool(_NUMBER.match(v)),
    "required": lambda v: v != "",
    "file": lambda v: "." in v.rsplit("/", 1)[-1],
    "nonfile": lambda v: "." not in v.rsplit("/", 1)[-1],
}


def _ints(args: str, counts: tuple[int, ...], name: str) -> list[int]:
    parts = [a.strip() for a in args.split(",")] if args else []
    if len(parts) not in counts or not all(_INTEGER.match(p) for p in parts):
        raise RouteTemplateError(
            f"constraint {name} takes {' or '.join(map(str, counts))} integer "
            f"argument(s), got ({args})"
        )
    return [int(p) for p in parts]


def _in_range(low: int, high: int) -> Check:
    def check(value: str) -> bool:
        number = _integer(value, _INT64)
        return number is not None and low <= number <= high

    return check


def _regex(args: str, name: str) -> Check:
    if not args:
        raise RouteTemplateError("regex constraint needs a pattern")
    # ASP.NET's RegexRouteConstraint is unanchored and case-insensitive.
    pattern = re.compile(args, re.IGNORECASE)
    return lambda v: pattern.search(v) is not None


def _length(args: str, name: str) -> Check:
    bounds = _ints(args, (1, 2), name)
    low, high = bounds[0], bounds[-1]
    return lambda v: low <= len(v) <= high


def _minlength(args: str, name: str) -> Check:
    (n,) = _ints(args, (1,), name)
    return lambda v: len(v) >= n


def _maxlength(args: str, name: str) -> Check:
    (n,) = _ints(args, (1,), name)
    return lambda v: len(v) <= n


def _min(args: str, name: str) -> Check:
    (low,) = _ints(args, (1,), name)
    return _in_range(low, _INT64[1])


def _max(args: str, name: str) -> Check:
    (high,) = _ints(args, (1,), name)
    return _in_range(_INT64[0], high)


def _range(args: str, name: str) -> Check:
    low, high = _ints(args, (2,), name)
    return _in_range(low, high)


# Constraints with arguments: a factory from the argument text to the check.
_WITH_ARGUMENTS: dict[str, Callable[[str, str], Check]] = {
    "minlength": _minlength,
    "maxlength": _maxlength,
    "length": _length,
    "min": _min,
    "max": _max,
    "range": _range,
    "regex": _regex,
}


def make_constraint(name: str, args: str | None) -> Constraint:
    """One inline constraint, e.g. ("int", None) or ("range", "1,10")."""
    key = name.lower()
    text = f"{name}({args})" if args is not None else name
    if key in _SIMPLE:
        if args is not None:
            raise RouteTemplateError(f"constraint {name} takes no arguments")
        return Constraint(text, _SIMPLE[key])
    if key not in _WITH_ARGUMENTS or (args is None and key != "regex"):
        raise RouteTemplateError(f"unknown route constraint {name!r}")
    return Constraint(text, _WITH_ARGUMENTS[key](args or "", name))
