"""Versioned migrations on SQLite: ``schema_version`` in the key store file.

SQLite serves one machine, where the gateway and the CLI share one file: opening the store
applies what is pending (there is no second instance to coordinate with, and DDL is
transactional in SQLite). ``BEGIN IMMEDIATE`` takes the write lock first, so two processes
opening a new file at once apply each migration once.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from bastion.errors import StateError
from bastion.store.migrations import Migration, shipped
from bastion.store.schema import Applied, SchemaStatus

_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at REAL NOT NULL
)
"""


def statements(text: str) -> Iterator[str]:
    """The complete statements of a script, one at a time (``executescript`` would commit)."""
    buffer = ""
    for line in text.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            yield buffer
            buffer = ""
    rest = [line for line in buffer.splitlines() if not line.strip().startswith("--")]
    if "".join(rest).strip():
        raise StateError("a SQLite migration ends with an incomplete statement")


def applied(db: sqlite3.Connection) -> tuple[Applied, ...]:
    exists = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if exists is None:
        return ()
    rows = db.execute(
        "SELECT version, name, applied_at, checksum FROM schema_version ORDER BY version"
    ).fetchall()
    return tuple(Applied(int(v), str(n), float(at), str(c)) for v, n, at, c in rows)


def status(
    db: sqlite3.Connection, path: Path, migrations: Sequence[Migration] | None = None
) -> SchemaStatus:
    todo = tuple(migrations) if migrations is not None else shipped("sqlite")
    return SchemaStatus(f"key store {path}", applied(db), todo)


def upgrade(
    db: sqlite3.Connection, migrations: Sequence[Migration] | None = None
) -> list[Migration]:
    """Apply what is pending, each migration in one transaction with its version row.

    ``db`` must be in autocommit mode (``isolation_level=None``), as the key store opens it.
    Errors are :class:`sqlite3.Error`; the store translates them.
    """
    todo = tuple(migrations) if migrations is not None else shipped("sqlite")
    done: list[Migration] = []
    if {m.version for m in todo} <= {a.version for a in applied(db)}:
        return done  # current: no write lock taken
    for migration in todo:
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(_VERSION_TABLE)
            already = db.execute(
                "SELECT 1 FROM schema_version WHERE version = ?", (migration.version,)
            ).fetchone()
            if already is None:
                for statement in statements(migration.sql):
                    db.execute(statement)
                db.execute(
                    "INSERT INTO schema_version (version, name, checksum, applied_at)"
                    " VALUES (?, ?, ?, ?)",
                    (migration.version, migration.name, migration.checksum, time.time()),
                )
                done.append(migration)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
    return done
