"""checkov over infra/, in its own venv (.venv-checkov; INFRA_SKIP_CHECKOV=1 opts out
explicitly): its failures must match tests/checkov_skips.json, and every checkable
resource must have been checked, because checkov skips a file it cannot parse and
still exits 0."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.infra_support import BICEP_FILES, REPO, SKIPS_FILE, declared_resources, rel


@pytest.fixture(scope="module")
def checkov() -> Path:
    if os.environ.get("INFRA_SKIP_CHECKOV") == "1":
        pytest.skip("INFRA_SKIP_CHECKOV=1")
    result = subprocess.run(
        ["bash", str(REPO / "devtools" / "ensure_checkov.sh")],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, (
        f"could not install checkov:\n{result.stderr[-3000:]}"
    )
    return Path(result.stdout.strip().splitlines()[-1])


def run_checkov(checkov: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # --skip-download: no calls to the vendor's API (offline, deterministic).
    return subprocess.run(
        [str(checkov), "--framework", "bicep", "--skip-download", *args],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def checkov_report(checkov: Path) -> dict[str, Any]:
    result = run_checkov(checkov, "-d", "infra", "-o", "json")
    assert result.returncode in (0, 1), result.stderr[-3000:]
    report = json.loads(result.stdout)
    if isinstance(report, list):
        (report,) = [r for r in report if r.get("check_type") == "bicep"]
    assert "results" in report, f"checkov checked nothing: {report}"
    return report


@pytest.fixture(scope="module")
def checkov_types(checkov: Path) -> set[str]:
    """Resource types checkov has Bicep checks for (its --list table)."""
    result = run_checkov(checkov, "--list")
    assert result.returncode == 0, result.stderr[-3000:]
    types = set()
    for line in result.stdout.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) > 5 and cells[3] == "resource":
            types.add(cells[4].lower())
    assert "microsoft.storage/storageaccounts" in types
    return types


def test_checkov_parsed_every_file(checkov_report: dict[str, Any]):
    assert checkov_report["results"]["parsing_errors"] == []
    assert checkov_report["summary"]["parsing_errors"] == 0


def test_checkov_checked_every_checkable_resource(
    checkov_report: dict[str, Any], checkov_types: set[str]
):
    results = checkov_report["results"]
    seen = {
        (c["file_path"].lstrip("/"), c["resource"])
        for c in results["passed_checks"] + results["failed_checks"]
    }
    # Declared resources come from tree-sitter, independent of checkov's own parser, so a
    # file or resource checkov drops (it exits 0 on parse failures) shows up here.
    expected = set()
    for path in BICEP_FILES:
        for symbol, type_name, existing in declared_resources(path):
            if not existing and type_name.lower() in checkov_types:
                expected.add((rel(path), f"{type_name}.{symbol}"))
    assert expected, "no checkable resource found"
    assert expected <= seen, f"checkov silently skipped: {sorted(expected - seen)}"


def test_checkov_failures_are_exactly_the_documented_skips(
    checkov_report: dict[str, Any],
):
    skips = json.loads(SKIPS_FILE.read_text())["skips"]
    for skip in skips:
        assert len(skip.get("reason", "")) > 20, f"skip without a real reason: {skip}"
    allowed = {(s["check"], s["resource"], s["file"]) for s in skips}
    failed = {
        (c["check_id"], c["resource"], c["file_path"].lstrip("/"))
        for c in checkov_report["results"]["failed_checks"]
    }
    assert not failed - allowed, (
        "new checkov failures (fix, or add to tests/checkov_skips.json with a reason):\n"
        + ("\n".join(sorted(map(str, failed - allowed))))
    )
    assert not allowed - failed, (
        "stale entries in tests/checkov_skips.json:\n"
        + "\n".join(sorted(map(str, allowed - failed)))
    )
