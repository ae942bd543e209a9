"""Versioned migrations on SQLite: applied when the store opens (one machine, nothing to
coordinate); a file the pre-migration releases created keeps its keys."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from bastion.store import SqliteKeyStore, migrate_sqlite
from bastion.store.migrations import Migration, shipped
from bastion.store.records import KeyRecord
from tests.store.legacy import SQLITE


def record(key_id: str) -> KeyRecord:
    return KeyRecord(id=key_id, hash="ab" * 32, consumer="acme", created_at=1.0, expires_at=9e9)


def versions(path: Path) -> list[int]:
    with sqlite3.connect(path) as db:
        return [int(r[0]) for r in db.execute("SELECT version FROM schema_version ORDER BY 1")]


def test_a_new_file_is_at_the_latest_version(tmp_path: Path) -> None:
    store = SqliteKeyStore(tmp_path / "keys.db")
    store.close()
    assert versions(tmp_path / "keys.db") == list(range(1, len(shipped("sqlite")) + 1))


def test_a_file_made_before_migrations_keeps_its_keys(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    with sqlite3.connect(path) as db:
        db.executescript(SQLITE)
        db.execute(
            "INSERT INTO api_keys (id, hash, consumer, created_at, expires_at, revision)"
            " VALUES ('old1', ?, 'legacy', 1, 9e9, 1)",
            ("cd" * 32,),
        )
        db.execute("UPDATE api_key_state SET revision = 1")
    db.close()
    store = SqliteKeyStore(path, create=False)
    try:
        old = store.get("old1")
        assert old is not None
        assert old.consumer == "legacy"
        assert store.insert(record("new1")).revision == 2
    finally:
        store.close()
    assert versions(path) == [m.version for m in shipped("sqlite")]


def test_a_failing_migration_leaves_nothing_behind(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "keys.db", isolation_level=None)
    migrate_sqlite.upgrade(db)
    broken = Migration(
        len(shipped("sqlite")) + 1,
        "broken",
        "ALTER TABLE api_keys ADD COLUMN half TEXT;\nALTER TABLE no_such ADD COLUMN x INT;\n",
    )
    try:
        migrate_sqlite.upgrade(db, [*shipped("sqlite"), broken])
    except sqlite3.OperationalError:
        pass
    else:  # pragma: no cover
        raise AssertionError("the broken migration applied")
    names = [r[1] for r in db.execute("PRAGMA table_info(api_keys)")]
    assert "half" not in names
    assert max(v for v in versions(tmp_path / "keys.db")) == len(shipped("sqlite"))
    db.close()


def test_processes_opening_a_new_file_together_apply_each_migration_once(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    errors: list[BaseException] = []

    def open_close() -> None:
        try:
            SqliteKeyStore(path).close()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_close) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert versions(path) == list(range(1, len(shipped("sqlite")) + 1))


def test_statements_are_split_whole_and_comments_are_skipped() -> None:
    text = "-- a comment; with a semicolon\nCREATE TABLE a (x TEXT DEFAULT ';');\nSELECT 1;\n"
    assert [s.strip() for s in migrate_sqlite.statements(text)] == [
        "-- a comment; with a semicolon\nCREATE TABLE a (x TEXT DEFAULT ';');",
        "SELECT 1;",
    ]
