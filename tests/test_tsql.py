"""Every T-SQL statement of the project parses as T-SQL: a syntax error shows without a SQL Server."""

import importlib
import pkgutil

import pytest
import sqlglot
from sqlglot.errors import ParseError

import commands
import shared
from shared.sql.db import ALL_STATEMENTS
from shared.sql.migrate import migration_files, split_batches


def _import_all(package) -> None:
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(module.name)


_import_all(commands)
_import_all(shared)


def test_statements_are_registered():
    assert len(ALL_STATEMENTS) >= 10


@pytest.mark.parametrize("statement", ALL_STATEMENTS, ids=lambda s: s.tsql[:60])
def test_tsql_statement_parses(statement):
    try:
        parsed = sqlglot.parse(statement.tsql, read="tsql")
    except ParseError as exc:
        pytest.fail(f"{statement.tsql}\n{exc}")
    assert len(parsed) == 1 and parsed[0] is not None


BATCHES = [
    (path.name, batch)
    for path in migration_files("tsql")
    for batch in split_batches(path.read_text(), "tsql")
]


@pytest.mark.parametrize(
    ("file", "batch"),
    BATCHES,
    ids=[f"{f}:{b.splitlines()[-1][:40]}" for f, b in BATCHES],
)
def test_migration_batch_parses_as_tsql(file, batch):
    try:
        parsed = sqlglot.parse(batch, read="tsql")
    except ParseError as exc:
        pytest.fail(f"{file}: {exc}")
    assert parsed and all(p is not None for p in parsed)


def test_every_tsql_migration_has_a_sqlite_twin():
    tsql = [p.name for p in migration_files("tsql")]
    sqlite = [p.name for p in migration_files("sqlite")]
    assert tsql == sqlite and tsql
