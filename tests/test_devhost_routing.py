"""Route templates at the edges of what werkzeug's matcher does on its own: values
decoded from %2F, case-insensitive literals inside complex segments, optional parts,
and ASP.NET's ranking where werkzeug would take the first match."""

from __future__ import annotations

import pytest

from devtools.devhost.routing import RouteTable, RouteTemplate, split_path


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        ("api/p/{name}", "/api/p/a%2Fb", {"name": "a/b"}),  # one segment, decoded
        ("api/p/{name}", "/api/p/100%25", {"name": "100%"}),
        ("api/p/{name}/x", "/api/p//x", None),  # an empty segment is no value
        ("api/f/{*rest}", "/api/f//", {}),  # an empty catch-all is as if absent
        ("api/f/{*rest=all}", "/api/f", {"rest": "all"}),
        ("api/f/{*rest:minlength(3)}", "/api/f/ab", None),
        ("api/c/File-{id:int}.TXT", "/api/c/file-7.txt", {"id": "7"}),
        (
            "api/c/{name}.{ext:alpha?}",
            "/api/c/a.1",
            None,
        ),  # the full form is tried first
        ("api/c/{name}.{ext=md}", "/api/c/notes", {"name": "notes", "ext": "md"}),
        ("api/o/{a?}/{b?}", "/api/o", {}),
        ("api/o/{a?}/{b?}", "/api/o/1/2", {"a": "1", "b": "2"}),
        ("api/o/{a?}/x", "/api/o", None),  # only trailing parameters may be left out
        # Segment counts, which rule most templates out before any matching:
        ("api/f/{*rest}", "/api/f/a/b/c", {"rest": "a/b/c"}),  # a catch-all: no limit
        ("api/p/{name}", "/api/p/a/b", None),
        ("api/p/{name}", "/api/p", None),
        ("api/o/{a?}/{b?}", "/api/o/1/2/3", None),
    ],
)
def test_template_edges(
    template: str, path: str, expected: dict[str, str] | None
) -> None:
    assert RouteTemplate(template).match(split_path(path)) == expected


def test_the_most_specific_template_wins_across_equal_ranks() -> None:
    # Both have a constrained parameter second; the literal at the end decides, not the
    # order of registration (werkzeug alone would follow the first one that matches).
    table = RouteTable()
    table.add("x/{id:int}/b/{z}", ["GET"], "parameter-last")
    table.add("x/{id:long}/b/c", ["GET"], "literal-last")
    assert table.resolve("GET", "/x/5/b/c").target == "literal-last"
    assert table.resolve("GET", "/x/5/b/d").target == "parameter-last"
