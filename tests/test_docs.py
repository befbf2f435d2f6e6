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
    for command in set(re.findall(r"make ([a-z-]+)", README)):
        assert command in targets, command


def test_readme_shows_the_two_commands_and_a_diagram():
    assert "make run" in README and "make test" in README and "```mermaid" in README
