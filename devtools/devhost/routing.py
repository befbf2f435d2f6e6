"""Azure Functions (ASP.NET Core) route templates: parsing, matching and precedence.

Supported: literals (case-insensitive), `{name}`, inline constraints `{id:int}`,
`{id:int:min(1)}`, optional `{id?}`, defaults `{id=5}`, catch-all `{*rest}`/`{**rest}`,
complex segments (`{name}.{ext}`), and `{{`/`}}` escapes. When several templates match a
path, the most specific wins, ranked as ASP.NET's RoutePrecedence does per segment:
literal < constrained parameter / complex segment < parameter < constrained catch-all
< catch-all.
"""

from __future__ import annotations

import itertools
import re
import urllib.parse
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

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


class RouteTemplateError(ValueError):
    """A route template the host would refuse."""


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


def _ints(args: str, count: int, name: str) -> list[int]:
    parts = [a.strip() for a in args.split(",")] if args else []
    if len(parts) != count or not all(_INTEGER.match(p) for p in parts):
        raise RouteTemplateError(
            f"constraint {name} takes {count} integer argument(s), got ({args})"
        )
    return [int(p) for p in parts]


@dataclass(frozen=True)
class Constraint:
    text: str
    check: Callable[[str], bool] = field(compare=False, repr=False)


def make_constraint(name: str, args: str | None) -> Constraint:
    """One inline constraint, e.g. ("int", None) or ("range", "1,10")."""
    key = name.lower()
    text = f"{name}({args})" if args is not None else name
    simple: dict[str, Callable[[str], bool]] = {
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
    if key in simple:
        if args is not None:
            raise RouteTemplateError(f"constraint {name} takes no arguments")
        return Constraint(text, simple[key])
    if args is None and key != "regex":
        raise RouteTemplateError(f"unknown route constraint {name!r}")
    if key == "minlength":
        (n,) = _ints(args or "", 1, name)
        return Constraint(text, lambda v: len(v) >= n)
    if key == "maxlength":
        (n,) = _ints(args or "", 1, name)
        return Constraint(text, lambda v: len(v) <= n)
    if key == "length":
        bounds = (
            _ints(args or "", 2, name)
            if "," in (args or "")
            else _ints(args or "", 1, name) * 2
        )
        return Constraint(text, lambda v: bounds[0] <= len(v) <= bounds[1])
    if key in {"min", "max", "range"}:
        limits = _ints(args or "", 2 if key == "range" else 1, name)
        low = limits[0] if key in {"min", "range"} else _INT64[0]
        high = limits[-1] if key in {"max", "range"} else _INT64[1]

        def in_range(v: str) -> bool:
            number = _integer(v, _INT64)
            return number is not None and low <= number <= high

        return Constraint(text, in_range)
    if key == "regex":
        if not args:
            raise RouteTemplateError("regex constraint needs a pattern")
        # ASP.NET's RegexRouteConstraint is unanchored and case-insensitive.
        pattern = re.compile(args, re.IGNORECASE)
        return Constraint(text, lambda v: pattern.search(v) is not None)
    raise RouteTemplateError(f"unknown route constraint {name!r}")


@dataclass(frozen=True)
class Parameter:
    name: str
    constraints: tuple[Constraint, ...] = ()
    optional: bool = False
    default: str | None = None
    catch_all: bool = False

    def accepts(self, value: str) -> bool:
        return all(c.check(value) for c in self.constraints)


Part = str | Parameter


@dataclass(frozen=True)
class Segment:
    parts: tuple[Part, ...]

    @property
    def parameter(self) -> Parameter | None:
        """The parameter when the whole segment is one parameter."""
        return (
            self.parts[0]
            if len(self.parts) == 1 and isinstance(self.parts[0], Parameter)
            else None
        )

    @property
    def literal(self) -> str | None:
        return (
            self.parts[0]
            if len(self.parts) == 1 and isinstance(self.parts[0], str)
            else None
        )

    def precedence_digit(self) -> int:
        if len(self.parts) > 1:
            return 2
        part = self.parts[0]
        if isinstance(part, str):
            return 1
        digit = 5 if part.catch_all else 3
        return digit - 1 if part.constraints else digit


def _split_constraint(text: str) -> tuple[str, str | None, str]:
    """Split one constraint off the front of `text` (which starts after the ':')."""
    match = re.match(r"[A-Za-z_][A-Za-z0-9_]*", text)
    if not match:
        raise RouteTemplateError(f"invalid constraint in {text!r}")
    name, rest = match.group(0), text[match.end() :]
    if not rest.startswith("("):
        return name, None, rest
    # The argument runs to the first ')' that ends the constraint (a regex may hold ')').
    for i, char in enumerate(rest):
        if char == ")":
            after = rest[i + 1 :]
            if after == "" or after == "?" or after[0] in ":=":
                return name, rest[1:i], after
    raise RouteTemplateError(f"unterminated constraint argument in {text!r}")


def parse_parameter(content: str) -> Parameter:
    """Parse the inside of `{...}`, e.g. `id:int?`, `*rest`, `page=1`."""
    catch_all = content.startswith("*")
    body = content.lstrip("*")
    match = re.match(r"[^:=?]+", body)
    if not match:
        raise RouteTemplateError(f"route parameter without a name: {{{content}}}")
    name, rest = match.group(0).strip(), body[match.end() :]
    constraints: list[Constraint] = []
    while rest.startswith(":"):
        cname, args, rest = _split_constraint(rest[1:])
        constraints.append(make_constraint(cname, args))
    default = None
    optional = False
    if rest.startswith("="):
        default, rest = rest[1:], ""
        if default.endswith("?"):
            raise RouteTemplateError(
                f"parameter {name} cannot have a default and be optional"
            )
    if rest == "?":
        optional, rest = True, ""
    if rest:
        raise RouteTemplateError(f"invalid route parameter {{{content}}}")
    if catch_all and optional:
        raise RouteTemplateError(
            f"a catch-all parameter cannot be optional: {{{content}}}"
        )
    return Parameter(name, tuple(constraints), optional, default, catch_all)


def _split_segments(template: str) -> list[str]:
    """Split on '/' outside `{...}` (a constraint argument may contain '/')."""
    segments, current, depth, i = [], [], 0, 0
    while i < len(template):
        char = template[i]
        pair = template[i : i + 2]
        if pair in ("{{", "}}") and (depth == 0 or pair == "}}"):
            current.append(pair)
            i += 2
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth = max(0, depth - 1)
        if char == "/" and depth == 0:
            segments.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    segments.append("".join(current))
    return segments


def parse_segment(text: str) -> Segment:
    parts: list[Part] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("{{", i):
            literal.append("{")
            i += 2
        elif text.startswith("}}", i):
            literal.append("}")
            i += 2
        elif text[i] == "{":
            # The parameter ends at the first '}' not doubled ('{{' and '}}' inside are escaped braces).
            j, content = i + 1, []
            while j < len(text):
                if text.startswith("}}", j) or text.startswith("{{", j):
                    content.append(text[j])
                    j += 2
                elif text[j] == "}":
                    break
                else:
                    content.append(text[j])
                    j += 1
            else:
                raise RouteTemplateError(
                    f"unterminated route parameter in segment {text!r}"
                )
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(parse_parameter("".join(content)))
            i = j + 1
        elif text[i] == "}":
            raise RouteTemplateError(f"unmatched '}}' in segment {text!r}")
        else:
            literal.append(text[i])
            i += 1
    if literal:
        parts.append("".join(literal))
    if not parts:
        raise RouteTemplateError("empty route segment")
    params = [p for p in parts if isinstance(p, Parameter)]
    if len(parts) > 1 and any(p.catch_all for p in params):
        raise RouteTemplateError(
            f"a catch-all parameter must be a whole segment: {text!r}"
        )
    for a, b in itertools.pairwise(parts):
        if isinstance(a, Parameter) and isinstance(b, Parameter):
            raise RouteTemplateError(
                f"two parameters need a literal between them: {text!r}"
            )
    return Segment(tuple(parts))


class RouteTemplate:
    """A parsed route template that matches decoded path segments."""

    def __init__(self, template: str) -> None:
        self.template = template
        text = template.strip()
        text = text[2:] if text.startswith("~/") else text.lstrip("/")
        text = text.rstrip("/")
        self.segments: tuple[Segment, ...] = (
            tuple(parse_segment(s) for s in _split_segments(text)) if text else ()
        )
        names = [
            p.name.lower()
            for s in self.segments
            for p in s.parts
            if isinstance(p, Parameter)
        ]
        if len(names) != len(set(names)):
            raise RouteTemplateError(f"a parameter name appears twice in {template!r}")
        for index, segment in enumerate(self.segments):
            last = index == len(self.segments) - 1
            for part in segment.parts:
                if isinstance(part, Parameter) and part.catch_all and not last:
                    raise RouteTemplateError(
                        f"a catch-all parameter must be last: {template!r}"
                    )
        self.precedence: tuple[int, ...] = tuple(
            s.precedence_digit() for s in self.segments
        )
        self._complex = {
            i: self._segment_patterns(s)
            for i, s in enumerate(self.segments)
            if len(s.parts) > 1
        }

    def __repr__(self) -> str:
        return f"RouteTemplate({self.template!r})"

    @staticmethod
    def _segment_patterns(segment: Segment) -> list[re.Pattern[str]]:
        """Regexes to try in order; greedy groups split at the last literal, as ASP.NET does."""

        def compile_parts(parts: tuple[Part, ...]) -> re.Pattern[str]:
            pattern = "".join(
                re.escape(p) if isinstance(p, str) else f"(?P<{_group_name(p.name)}>.+)"
                for p in parts
            )
            return re.compile("^" + pattern + "$", re.IGNORECASE | re.DOTALL)

        patterns = [compile_parts(segment.parts)]
        last = segment.parts[-1]
        if (
            isinstance(last, Parameter)
            and (last.optional or last.default is not None)
            and len(segment.parts) > 2
        ):
            # "{name}.{ext?}" also matches "readme" (without the literal before the optional part).
            patterns.append(compile_parts(segment.parts[:-2]))
        return patterns

    def match(self, path_segments: list[str]) -> dict[str, str] | None:
        """Route values for a path (segments already percent-decoded), or None."""
        values: dict[str, str] = {}
        for index, segment in enumerate(self.segments):
            param = segment.parameter
            if param is not None and param.catch_all:
                rest = "/".join(path_segments[index:])
                if rest:
                    if not param.accepts(rest):
                        return None
                    values[param.name] = rest
                elif param.default is not None:
                    values[param.name] = param.default
                return values
            if index >= len(path_segments):
                # Missing trailing segments are fine only for optional or defaulted parameters.
                if param is None or not (param.optional or param.default is not None):
                    return None
                if param.default is not None:
                    values[param.name] = param.default
                continue
            value = path_segments[index]
            if segment.literal is not None:
                if value.lower() != segment.literal.lower():
                    return None
            elif param is not None:
                if value == "" or not param.accepts(value):
                    return None
                values[param.name] = value
            else:
                match = next(
                    (m for p in self._complex[index] if (m := p.match(value))), None
                )
                if match is None:
                    return None
                for part in segment.parts:
                    if isinstance(part, Parameter):
                        part_value = match.groupdict().get(_group_name(part.name))
                        if part_value is None:
                            if part.default is not None:
                                values[part.name] = part.default
                            continue
                        if not part.accepts(part_value):
                            return None
                        values[part.name] = part_value
        if len(path_segments) > len(self.segments):
            return None
        return values


def _group_name(name: str) -> str:
    return "p_" + uuid.uuid5(uuid.NAMESPACE_OID, name.lower()).hex


def split_path(raw_path: str) -> list[str]:
    """Percent-decoded segments of a request path; one trailing slash is ignored."""
    path = raw_path.split("?", 1)[0].lstrip("/")
    path = path.removesuffix("/")
    if not path:
        return []
    return [urllib.parse.unquote(s) for s in path.split("/")]


ALL_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE")


@dataclass(frozen=True)
class RouteEntry:
    template: RouteTemplate
    methods: frozenset[str] | None  # None: every method
    target: Any
    order: int


@dataclass(frozen=True)
class Resolution:
    """The outcome for one request: a target, or the methods the path allows (405), or neither (404)."""

    target: Any = None
    route_params: dict[str, str] = field(default_factory=dict)
    template: RouteTemplate | None = None
    allowed: tuple[str, ...] = ()

    @property
    def found(self) -> bool:
        return self.target is not None

    @property
    def method_not_allowed(self) -> bool:
        return self.target is None and bool(self.allowed)


class RouteTable:
    def __init__(self) -> None:
        self.entries: list[RouteEntry] = []

    def add(
        self, template: str, methods: Iterable[str] | None, target: Any
    ) -> RouteEntry:
        method_set = frozenset(m.upper() for m in methods) if methods else None
        entry = RouteEntry(
            RouteTemplate(template), method_set, target, len(self.entries)
        )
        self.entries.append(entry)
        return entry

    def resolve(self, method: str, raw_path: str) -> Resolution:
        segments = split_path(raw_path)
        method = method.upper()
        matches = [
            (entry, params)
            for entry in self.entries
            if (params := entry.template.match(segments)) is not None
        ]
        accepting = [
            (e, p) for e, p in matches if e.methods is None or method in e.methods
        ]
        if accepting:
            entry, params = min(
                accepting, key=lambda ep: (ep[0].template.precedence, ep[0].order)
            )
            return Resolution(entry.target, params, entry.template)
        if matches:
            allowed: set[str] = set()
            for entry, _ in matches:
                allowed |= set(entry.methods or ALL_METHODS)
            return Resolution(allowed=tuple(sorted(allowed)))
        return Resolution()
