"""Apply the schema migrations idempotently: `python -m shared.sql.migrate`.

T-SQL files in migrations/ are the source (batches split on `GO` lines);
migrations/sqlite/ holds their SQLite twins. Applied versions are recorded in
`schema_migrations`, so a second run changes nothing.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import sys
from pathlib import Path

from shared.sql.db import Database, Transaction, database, db_time, utcnow

MIGRATIONS = Path(__file__).with_name("migrations")

_CREATE_HISTORY = {
    "tsql": "IF OBJECT_ID('dbo.schema_migrations') IS NULL "
    "CREATE TABLE dbo.schema_migrations (version NVARCHAR(100) NOT NULL PRIMARY KEY, applied_at DATETIME2(3) NOT NULL)",
    "sqlite": "CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT NOT NULL PRIMARY KEY, applied_at TEXT NOT NULL)",
}


def migration_files(dialect: str) -> list[Path]:
    folder = MIGRATIONS / "sqlite" if dialect == "sqlite" else MIGRATIONS
    return sorted(folder.glob("*.sql"))


def split_batches(script: str, dialect: str) -> list[str]:
    if dialect == "tsql":
        parts = re.split(r"^\s*GO\s*$", script, flags=re.MULTILINE | re.IGNORECASE)
    else:
        parts, current = [], ""
        for line in script.splitlines(keepends=True):
            current += line
            if sqlite3.complete_statement(current):
                parts.append(current)
                current = ""
        parts.append(current)
    return [p.strip() for p in parts if p.strip() and not _only_comments(p)]


def _only_comments(text: str) -> bool:
    return all(
        not line.strip() or line.strip().startswith("--") for line in text.splitlines()
    )


def apply_migrations(db: Database | None = None) -> list[str]:
    """Apply what is not yet applied; returns the versions applied now."""
    db = db or database()
    db.run(lambda tx: tx.execute(_CREATE_HISTORY[db.dialect]))
    applied_now = []
    for path in migration_files(db.dialect):
        version = path.stem

        def apply(tx: Transaction, path: Path = path, version: str = version) -> bool:
            if tx.one("SELECT 1 FROM schema_migrations WHERE version = ?", (version,)):
                return False
            for batch in split_batches(path.read_text(), db.dialect):
                tx.execute(batch)
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                (version, db_time(utcnow())),
            )
            return True

        if db.run(apply):
            applied_now.append(version)
    return applied_now


def main() -> int:
    logging.basicConfig(level=logging.INFO)
    applied = apply_migrations()
    print(
        f"applied: {', '.join(applied) if applied else 'nothing (schema up to date)'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
