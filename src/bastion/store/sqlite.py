"""The SQLite :class:`KeyStore`: one file under ``state_dir``, owner-only, in WAL mode.

Opening the file applies the pending schema migrations (:mod:`.migrate_sqlite`): one machine,
nothing to coordinate, so no separate upgrade step is needed.

WAL lets the gateway's sync thread read while ``bastion keys`` writes; every write is one
``BEGIN IMMEDIATE`` transaction that also moves the revision, so readers never see a change
without its revision or the other way round.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bastion.errors import StateError
from bastion.store import migrate_sqlite
from bastion.store.records import KeyRecord, scopes_from_text, scopes_text

COLUMNS = (
    "id, hash, consumer, name, scopes, tier, created_at, expires_at, revoked_at,"
    " last_used_at, replaced_by, revision"
)


def record_from_row(row: tuple[Any, ...]) -> KeyRecord:
    return KeyRecord(
        id=row[0],
        hash=row[1],
        consumer=row[2],
        name=row[3],
        scopes=scopes_from_text(row[4]),
        tier=row[5],
        created_at=float(row[6]),
        expires_at=float(row[7]),
        revoked_at=None if row[8] is None else float(row[8]),
        last_used_at=None if row[9] is None else float(row[9]),
        replaced_by=row[10],
        revision=int(row[11]),
    )


def record_values(record: KeyRecord, revision: int) -> tuple[Any, ...]:
    return (
        record.id,
        record.hash,
        record.consumer,
        record.name,
        scopes_text(record.scopes),
        record.tier,
        record.created_at,
        record.expires_at,
        record.revoked_at,
        record.last_used_at,
        record.replaced_by,
        revision,
    )


def create_private_file(path: Path) -> None:
    """Create ``path`` readable and writable by its owner only, or tighten it if it exists."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


class SqliteKeyStore:
    """API keys in the SQLite file ``path``. ``create`` makes the file (mode 0600); the schema
    is brought to the latest version either way."""

    def __init__(self, path: Path, *, create: bool = True) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            if create:
                create_private_file(path)
            elif not path.exists():
                raise StateError(f"key store {path} does not exist; expected `bastion keys create`")
            self._db = sqlite3.connect(
                path, timeout=5.0, isolation_level=None, check_same_thread=False
            )
            _opening(self._db)
        except (sqlite3.Error, OSError) as exc:
            raise StateError(f"key store {path} cannot be opened ({type(exc).__name__})") from exc

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Cursor]:
        with self._lock:
            cursor = self._db.cursor()
            try:
                cursor.execute("BEGIN IMMEDIATE")
                yield cursor
                cursor.execute("COMMIT")
            except BaseException as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StateError(
                        f"key store {self.path}: write failed ({type(exc).__name__})"
                    ) from exc
                raise
            finally:
                cursor.close()

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return list(self._db.execute(sql, params).fetchall())
            except sqlite3.Error as exc:
                raise StateError(
                    f"key store {self.path}: read failed ({type(exc).__name__})"
                ) from exc

    @staticmethod
    def _next_revision(cursor: sqlite3.Cursor) -> int:
        cursor.execute("UPDATE api_key_state SET revision = revision + 1 WHERE id = 1")
        row = cursor.execute("SELECT revision FROM api_key_state WHERE id = 1").fetchone()
        return int(row[0])

    def insert(self, record: KeyRecord) -> KeyRecord:
        with self._write() as cursor:
            if cursor.execute("SELECT 1 FROM api_keys WHERE id = ?", (record.id,)).fetchone():
                raise StateError(f"API key {record.id} already exists; expected a new key id")
            revision = self._next_revision(cursor)
            cursor.execute(
                f"INSERT INTO api_keys ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",  # noqa: S608
                record_values(record, revision),
            )
        return record.with_revision(revision)

    def get(self, key_id: str) -> KeyRecord | None:
        rows = self._read(f"SELECT {COLUMNS} FROM api_keys WHERE id = ?", (key_id,))  # noqa: S608
        return record_from_row(rows[0]) if rows else None

    def records(self, consumer: str | None = None) -> list[KeyRecord]:
        if consumer is None:
            rows = self._read(f"SELECT {COLUMNS} FROM api_keys ORDER BY created_at, id")  # noqa: S608
        else:
            rows = self._read(
                f"SELECT {COLUMNS} FROM api_keys WHERE consumer = ? ORDER BY created_at, id",  # noqa: S608
                (consumer,),
            )
        return [record_from_row(row) for row in rows]

    def revoke(self, key_id: str, at: float) -> KeyRecord | None:
        with self._write() as cursor:
            row = cursor.execute(
                "SELECT revoked_at FROM api_keys WHERE id = ?", (key_id,)
            ).fetchone()
            if row is None:
                return None
            if row[0] is None:
                revision = self._next_revision(cursor)
                cursor.execute(
                    "UPDATE api_keys SET revoked_at = ?, revision = ? WHERE id = ?",
                    (at, revision, key_id),
                )
        return self.get(key_id)

    def rotate(self, key_id: str, new: KeyRecord, grace_until: float) -> KeyRecord | None:
        with self._write() as cursor:
            row = cursor.execute(
                "SELECT expires_at FROM api_keys WHERE id = ?", (key_id,)
            ).fetchone()
            if row is None:
                return None
            revision = self._next_revision(cursor)
            cursor.execute(
                f"INSERT INTO api_keys ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",  # noqa: S608
                record_values(new, revision),
            )
            revision = self._next_revision(cursor)
            cursor.execute(
                "UPDATE api_keys SET expires_at = ?, replaced_by = ?, revision = ? WHERE id = ?",
                (min(float(row[0]), grace_until), new.id, revision, key_id),
            )
        return self.get(key_id)

    def revision(self) -> int:
        rows = self._read("SELECT revision FROM api_key_state WHERE id = 1")
        return int(rows[0][0])

    def changes(self, since: int) -> tuple[int, list[KeyRecord]]:
        with self._lock:
            try:
                self._db.execute("BEGIN")
                try:
                    current = self._db.execute(
                        "SELECT revision FROM api_key_state WHERE id = 1"
                    ).fetchone()[0]
                    rows = self._db.execute(
                        f"SELECT {COLUMNS} FROM api_keys WHERE revision > ?"  # noqa: S608
                        " ORDER BY revision",
                        (since,),
                    ).fetchall()
                finally:
                    self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StateError(
                    f"key store {self.path}: read failed ({type(exc).__name__})"
                ) from exc
        return int(current), [record_from_row(row) for row in rows]

    def touch(self, used: Mapping[str, float]) -> None:
        if not used:
            return
        with self._write() as cursor:
            cursor.executemany(
                "UPDATE api_keys SET last_used_at = ?"
                " WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)",
                [(at, key_id, at) for key_id, at in used.items()],
            )

    def pepper_check(self, fingerprint: str) -> bool:
        with self._write() as cursor:
            row = cursor.execute("SELECT pepper_check FROM api_key_state WHERE id = 1").fetchone()
            if row[0] is None:
                cursor.execute(
                    "UPDATE api_key_state SET pepper_check = ? WHERE id = 1", (fingerprint,)
                )
                return True
            return bool(row[0] == fingerprint)

    def close(self) -> None:
        with self._lock:
            self._db.close()


OPEN_ATTEMPTS = 50
"""Tries, 0.1 s apart, to switch a store to WAL and migrate it while other processes do too."""


def _opening(db: sqlite3.Connection) -> None:
    """WAL mode, then pending migrations. Several processes opening a new file at once can meet
    "database is locked" where SQLite does not wait on its busy timeout (the journal-mode switch
    and WAL recovery take their locks without the busy handler), so those steps are retried for
    up to 5 s; a migration itself runs under ``BEGIN IMMEDIATE`` and is applied once."""
    for attempt in range(OPEN_ATTEMPTS):
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            migrate_sqlite.upgrade(db)
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == OPEN_ATTEMPTS - 1:
                raise
            time.sleep(0.1)
