"""Azure Functions (ASP.NET Core) route templates: parsing, matching and precedence.

Supported: literals (case-insensitive), `{name}`, inline constraints `{id:int}`,
`{id:int:min(1)}` (devtools/devhost/route_constraints.py), optional `{id?}`, defaults
`{id=5}`, catch-all `{*rest}`/`{**rest}`, complex segments (`{name}.{ext}`), and
`{{`/`}}` escapes.

A template is parsed here and compiled into `werkzeug.routing` rules, one per form the
template can take (with or without its optional trailing parameters), which do the
matching. When several templates match a path, the most specific wins, ranked as
ASP.NET's RoutePrecedence does per segment: literal < constrained parameter / complex
segment < parameter < constrained catch-all < catch-all. Werkzeug's own ordering is
first-match over its own weights, so the ranking stays here.
"""

from __future__ import annotations

import itertools
import math
import re
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from werkzeug.exceptions import NotFound
from werkzeug.routing import BaseConverter, Map, Rule, ValidationError

from devtools.devhost.route_constraints import (
    Constraint,
    RouteTemplateError,
    make_constraint,
)


@dataclass(frozen=True)
class Parameter:
    name: str
    constraints: tuple[Constraint, ...] = ()
    optional: bool = False
    default: str | None = None
    catch_all: bool = False

    def accepts(self, value: str) -> bool:
        return all(c.check(value) for c in self.constraints)

    @property
    def omissible(self) -> bool:
        return self.optional or self.default is not None


Part = str | Parameter


@dataclass(frozen=True)
class Segment:
    parts: tuple[Part, ...]

    @property
    def parameter(self) -> Parameter | None:
        """The parameter when the whole segment is one parameter."""
        part = self.parts[0]
        return part if len(self.parts) == 1 and isinstance(part, Parameter) else None

    def omissible(self) -> bool:
        """Whether a path may end before this segment."""
        param = self.parameter
        return param is not None and (param.omissible or param.catch_all)

    def forms(self) -> list[tuple[Part, ...]]:
        """The part sequences the segment matches, tried in order: "{name}.{ext?}" also
        matches "readme" (without the literal before the optional part)."""
        last = self.parts[-1]
        if isinstance(last, Parameter) and last.omissible and len(self.parts) > 2:
            return [self.parts, self.parts[:-2]]
        return [self.parts]

    def precedence_digit(self) -> int:
        if len(self.parts) > 1:
            return 2
        part = self.parts[0]
        if isinstance(part, str):
            return 1
        digit = 5 if part.catch_all else 3
        return digit - 1 if part.constraints else digit


# --- parsing ------------------------------------------------------------------------------


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
    if rest.startswith("="):
        default, rest = rest[1:], ""
        if default.endswith("?"):
            raise RouteTemplateError(
                f"parameter {name} cannot have a default and be optional"
            )
    optional = rest == "?"
    if rest and not optional:
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


# One token of a segment: an escaped brace, a parameter (its content may hold escaped
# braces; possessive, so a parameter ends at the first single '}'), a stray brace, or text.
_TOKEN = re.compile(
    r"\{\{|\}\}|\{(?P<param>(?:\{\{|\}\}|[^}])*+)\}|(?P<open>\{)|(?P<close>\})|(?P<text>[^{}]+)"
)
_ESCAPED_BRACE = re.compile(r"\{\{|\}\}")


def _tokens(text: str) -> Iterator[Part]:
    for token in _TOKEN.finditer(text):
        if token["param"] is not None:
            yield parse_parameter(_ESCAPED_BRACE.sub(lambda m: m[0][0], token["param"]))
        elif token["open"]:
            raise RouteTemplateError(
                f"unterminated route parameter in segment {text!r}"
            )
        elif token["close"]:
            raise RouteTemplateError(f"unmatched '}}' in segment {text!r}")
        else:
            yield token["text"] or token[0][0]


def parse_segment(text: str) -> Segment:
    parts: list[Part] = []
    for part in _tokens(text):
        if isinstance(part, str) and parts and isinstance(parts[-1], str):
            parts[-1] += part  # text around an escaped brace
        else:
            parts.append(part)
    _check_segment(parts, text)
    return Segment(tuple(parts))


def _check_segment(parts: list[Part], text: str) -> None:
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


# --- matching with werkzeug ---------------------------------------------------------------

# Werkzeug splits the path it matches on '/', while a template matches percent-decoded
# segments (where '/' may come from %2F): each segment goes to werkzeug with '%' and '/'
# escaped, and values are unescaped before the constraints see them.


def _escape(segment: str) -> str:
    return segment.replace("%", "%25").replace("/", "%2F")


def _unescape(value: str) -> str:
    return value.replace("%2F", "/").replace("%25", "%")


def _literal_converter(text: str) -> type[BaseConverter]:
    """A literal as a converter: werkzeug's static parts match case-sensitively."""

    class Literal(BaseConverter):
        regex = f"(?i:{re.escape(_escape(text))})"

    return Literal


def _parameter_converter(parameter: Parameter) -> type[BaseConverter]:
    """A parameter as a converter that applies its constraints (a failed one: no match)."""

    class Value(BaseConverter):
        regex = "(?s:.*)" if parameter.catch_all else "[^/]+"
        part_isolating = not parameter.catch_all

        def to_python(self, value: str) -> str:
            value = _unescape(value)
            if value and not parameter.accepts(value):
                raise ValidationError()
            return value

    return Value


@dataclass(frozen=True)
class _Form:
    """One werkzeug rule of a template: its variables and the parameters it leaves out."""

    variables: dict[str, Parameter]
    omitted: tuple[Parameter, ...]


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
        self._check()
        self.precedence: tuple[int, ...] = tuple(
            s.precedence_digit() for s in self.segments
        )
        # How many path segments the template can match: a table of routes asks each
        # template, and most are ruled out by this alone, before any matching.
        count = len(self.segments)
        while count and self.segments[count - 1].omissible():
            count -= 1
        self.min_segments = count
        last = self.segments[-1].parts if self.segments else ()
        catch_all = any(isinstance(p, Parameter) and p.catch_all for p in last)
        self.max_segments = math.inf if catch_all else len(self.segments)
        self._converters: dict[str, type[BaseConverter]] = {}
        self._forms: list[_Form] = []
        rules = [self._rule(present) for present in self._shapes()]
        self._matcher = Map(
            rules,
            converters=self._converters,
            merge_slashes=False,
            redirect_defaults=False,
        ).bind("")

    def __repr__(self) -> str:
        return f"RouteTemplate({self.template!r})"

    def _parameters(self) -> list[Parameter]:
        return [p for s in self.segments for p in s.parts if isinstance(p, Parameter)]

    def _check(self) -> None:
        names = [p.name.lower() for p in self._parameters()]
        if len(names) != len(set(names)):
            raise RouteTemplateError(
                f"a parameter name appears twice in {self.template!r}"
            )
        if any(
            p.catch_all
            for s in self.segments[:-1]
            for p in s.parts
            if isinstance(p, Parameter)
        ):
            raise RouteTemplateError(
                f"a catch-all parameter must be last: {self.template!r}"
            )

    def _shapes(self) -> Iterator[tuple[tuple[Part, ...], ...]]:
        """Every sequence of segment forms the template matches: all its segments, then
        without each omissible trailing segment in turn."""
        count = len(self.segments)
        while True:
            yield from itertools.product(*(s.forms() for s in self.segments[:count]))
            if count == 0 or not self.segments[count - 1].omissible():
                return
            count -= 1

    def _rule(self, shape: tuple[tuple[Part, ...], ...]) -> Rule:
        variables: dict[str, Parameter] = {}
        texts = []
        for parts in shape:
            text = ""
            for part in parts:
                name = f"v{len(self._converters)}"
                if isinstance(part, str):
                    self._converters[name] = _literal_converter(part)
                else:
                    self._converters[name] = _parameter_converter(part)
                    variables[name] = part
                text += f"<{name}:{name}>"
            texts.append(text)
        present = set(variables.values())
        omitted = tuple(p for p in self._parameters() if p not in present)
        self._forms.append(_Form(variables, omitted))
        return Rule("/" + "/".join(texts), endpoint=str(len(self._forms) - 1))

    def match(self, path_segments: list[str]) -> dict[str, str] | None:
        """Route values for a path (segments already percent-decoded), or None."""
        if not self.min_segments <= len(path_segments) <= self.max_segments:
            return None
        path = "/" + "/".join(_escape(s) for s in path_segments)
        try:
            rule, matched = self._matcher.match(path, return_rule=True)
        except NotFound:
            return None
        form = self._forms[int(rule.endpoint)]
        values: dict[str, str] = {}
        for variable, parameter in form.variables.items():
            if matched[variable]:  # an empty catch-all is as if omitted
                values[parameter.name] = matched[variable]
            elif parameter.default is not None:
                values[parameter.name] = parameter.default
        for parameter in form.omitted:
            if parameter.default is not None:
                values[parameter.name] = parameter.default
        return values


def split_path(raw_path: str) -> list[str]:
    """Percent-decoded segments of a request path; one trailing slash is ignored."""
    path = raw_path.split("?", 1)[0].lstrip("/")
    path = path.removesuffix("/")
    if not path:
        return []
    return [urllib.parse.unquote(s) for s in path.split("/")]


# --- the route table ------------------------------------------------------------------------

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
