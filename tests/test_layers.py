"""The layers hold: each import contract in pyproject.toml ([tool.importlinter]) passes,
and the Function App loads no dev tool. `make lint` runs the same contracts; here a broken
layer fails the suite as well."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONTRACTS = [
    contract["id"]
    for contract in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"][
        "importlinter"
    ]["contracts"]
]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize("contract", CONTRACTS)
def test_the_import_contract_holds(contract: str) -> None:
    # The console script installed beside this interpreter, as `make lint` runs it.
    lint_imports = Path(sys.executable).with_name("lint-imports")
    run = _run(str(lint_imports), "--no-cache", "--no-logo", "--contract", contract)
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_function_app_loads_no_dev_tool() -> None:
    # function_app.py is a module, not a package, so no contract can take it as a source:
    # load it and look at what came with it.
    run = _run(
        sys.executable,
        "-c",
        "import sys, function_app\n"
        "print(sorted(m for m in sys.modules if m.partition('.')[0] == 'devtools'))",
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"
