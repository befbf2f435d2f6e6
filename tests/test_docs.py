"""The README stays in step with the code: every setting is documented, the commands exist."""

import re
from pathlib import Path

from shared.config import SETTINGS

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()


def test_every_setting_is_in_the_configuration_table():
    documented = set(re.findall(r"^\| `([^`]+)` \|", README, flags=re.MULTILINE))
    assert {s.name for s in SETTINGS} <= documented


def test_readme_commands_are_make_targets():
    targets = set(
        re.findall(r"^([a-z-]+):", (ROOT / "Makefile").read_text(), flags=re.MULTILINE)
    )
    for command in set(re.findall(r"make (?:-s )?([a-z][a-z-]*)", README)):
        assert command in targets, command


def test_readme_shows_the_two_commands_and_a_diagram():
    assert "make run" in README and "make test" in README and "```mermaid" in README


# --- the HTTP contract (docs/api.md) and the links -----------------------------------------

API_DOC = ROOT / "docs" / "api.md"
DOCUMENTED_ROUTE = re.compile(r"`(GET|POST|PUT|PATCH|DELETE) (/api/[^`?\s]*)")


def test_the_contract_lists_exactly_the_operations_of_the_openapi_document():
    import function_app  # noqa: F401 - registers the routes
    from shared.openapi import build_document

    operations = {
        (method.upper(), "/api" + path)
        for path, item in build_document()["paths"].items()
        for method in item
    }
    documented = set(DOCUMENTED_ROUTE.findall(API_DOC.read_text()))
    assert operations - documented == set(), "operations missing from docs/api.md"
    assert documented - operations == set(), (
        "docs/api.md lists routes that do not exist"
    )


def _link_targets(text: str) -> list[str]:
    return [
        target
        for target in re.findall(r"\]\(([^)\s]+)\)", text)
        if not re.match(r"(https?:|mailto:|#)", target)
    ]


def test_links_point_to_files_in_the_repository():
    documents = [*ROOT.glob("*.md"), *ROOT.glob("*/**/*.md"), ROOT / "test.http"]
    documents = [
        d
        for d in documents
        if not any(
            part == "node_modules" or part.startswith(".")
            for part in d.relative_to(ROOT).parts
        )
    ]
    assert API_DOC in documents
    for document in documents:
        for target in _link_targets(document.read_text()):
            path = (document.parent / target.split("#")[0]).resolve()
            assert path.exists(), (
                f"{document.relative_to(ROOT)}: {target} does not exist"
            )
            assert ROOT in path.parents, (
                f"{document.relative_to(ROOT)}: {target} is outside"
            )


def test_the_contract_is_referred_to_where_it_lives():
    for name in ("README.md", "test.http", "commands/functions.py"):
        text = (ROOT / name).read_text()
        assert "docs/api.md" in text, name
        assert "shared/API.md" not in text and "/work/" not in text, name
