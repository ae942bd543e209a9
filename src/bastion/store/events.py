# ruff: noqa: S608  (table names are fixed or composed by psycopg.sql.Identifier; values are bound)
"""The event store: security events kept for ``bastion events``, purged past their age.

The table ``security_events`` lives in the state store: the SQLite file ``state_dir/keys.db``
(owner-only, WAL so the CLI reads while gateways write) by default, PostgreSQL when
``postgres.dsn`` is set. Rows hold a few indexed columns (time, action, outcome, consumer, client
IP) and the whole redacted ECS line, so an export is exactly what the log sinks wrote.

The table is made by the versioned migration 2 (``store/migrations/*/0002_security_events.sql``),
like every other table: SQLite applies it when the file is opened; on PostgreSQL
``bastion db upgrade`` does, and a gateway's event store only checks the version (a gateway runs
no DDL). The release before kept SQLite events in ``state_dir/events.db``: opening the event
store moves those rows into the state store once (:func:`adopt_legacy_file`).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from bastion.errors import BackendUnavailable, StateError
from bastion.observability.ecs import StoredEvent

T = TypeVar("T")

LEGACY_SQLITE_FILE = "events.db"  # where the release before migration 2 kept them
COLUMNS = "ts, dataset, action, outcome, user_id, client_ip, request_id, status, document"
PURGE_BATCH = 5000  # rows per SQLite purge transaction: the write lock is shared with the keys


@dataclass(frozen=True, slots=True)
class EventQuery:
    """Which events to read. ``kind`` matches an action or an action prefix (``auth`` matches
    ``auth.invalid_token``); ``user_id`` is the consumer."""

    since: float | None = None
    until: float | None = None
    user_id: str | None = None
    client_ip: str | None = None
    kind: str | None = None
    outcome: str | None = None
    limit: int | None = None
    action_prefix: str | None = None  # a plain prefix (the admin API's ``action``)
    newest_first: bool = False

    @property
    def order(self) -> str:
        return " ORDER BY ts DESC, id DESC" if self.newest_first else " ORDER BY ts, id"

    def where(self, mark: str) -> tuple[str, list[Any]]:
        """The WHERE clause with ``mark`` as the placeholder, and its values."""
        clauses: list[str] = []
        values: list[Any] = []
        for column, op, value in (
            ("ts", ">=", self.since),
            ("ts", "<", self.until),
            ("user_id", "=", self.user_id),
            ("client_ip", "=", self.client_ip),
            ("outcome", "=", self.outcome),
        ):
            if value is not None:
                clauses.append(f"{column} {op} {mark}")
                values.append(value)
        if self.kind is not None:
            clauses.append(f"(action = {mark} OR substr(action, 1, {mark}) = {mark})")
            values += [self.kind, len(self.kind) + 1, self.kind + "."]
        if self.action_prefix:
            clauses.append(f"substr(action, 1, {mark}) = {mark}")
            values += [len(self.action_prefix), self.action_prefix]
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", values


class EventStore(Protocol):
    def insert(self, events: Sequence[StoredEvent]) -> None: ...

    def query(self, query: EventQuery) -> list[StoredEvent]: ...

    def purge(self, before: float) -> int: ...

    def close(self) -> None: ...


def _event(row: Sequence[Any]) -> StoredEvent:
    document = row[8]
    return StoredEvent(
        float(row[0]),
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        row[6],
        None if row[7] is None else int(row[7]),
        document.encode() if isinstance(document, str) else bytes(document),
    )


def _values(event: StoredEvent) -> tuple[Any, ...]:
    return (*event[:8], event.document.decode())


class SqliteEventStore:
    """``security_events`` in the SQLite state store at ``path``; opening it applies pending
    migrations, as the key store does."""

    def __init__(self, path: Path, *, create: bool = True) -> None:
        from bastion.store import migrate_sqlite
        from bastion.store.sqlite import create_private_file

        self.path = path
        self._lock = threading.Lock()
        try:
            if create:
                path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                create_private_file(path)
            elif not path.exists():
                raise StateError(f"event store {path} does not exist; no events were stored yet")
            self._db = sqlite3.connect(
                path, timeout=10.0, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            migrate_sqlite.upgrade(self._db)
        except (sqlite3.Error, OSError) as exc:
            raise StateError(f"event store {path} cannot be opened ({type(exc).__name__})") from exc

    def adopt_legacy_file(self, legacy: Path) -> int:
        """Move the rows of ``legacy`` (the events file of the release before migration 2)
        into this store, once; the file is renamed ``<name>.adopted`` inside the same write
        transaction, so that processes opening the store together move the rows once."""
        if not legacy.exists():
            return 0

        def work(db: sqlite3.Connection) -> int:
            db.execute("ATTACH DATABASE ? AS legacy", (str(legacy),))
            try:
                db.execute("BEGIN IMMEDIATE")
                moved = 0
                if legacy.exists():
                    has_table = db.execute(
                        "SELECT 1 FROM legacy.sqlite_master"
                        " WHERE type = 'table' AND name = 'security_events'"
                    ).fetchone()
                    if has_table is not None:
                        moved = db.execute(
                            f"INSERT INTO security_events ({COLUMNS})"
                            f" SELECT {COLUMNS} FROM legacy.security_events ORDER BY id"
                        ).rowcount
                    legacy.rename(legacy.with_name(legacy.name + ".adopted"))
                db.execute("COMMIT")
                return moved
            finally:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                db.execute("DETACH DATABASE legacy")

        try:
            return self._do(work)
        except OSError as exc:
            raise StateError(
                f"event store: {legacy} cannot be moved into {self.path} ({exc.strerror})"
            ) from exc

    def _do(self, work: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            try:
                return work(self._db)
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise StateError(f"event store {self.path} failed ({type(exc).__name__})") from exc

    def insert(self, events: Sequence[StoredEvent]) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                f"INSERT INTO security_events ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)",
                [_values(e) for e in events],
            )
            db.execute("COMMIT")

        self._do(work)

    def query(self, query: EventQuery) -> list[StoredEvent]:
        where, values = query.where("?")
        limit = f" LIMIT {int(query.limit)}" if query.limit is not None else ""
        sql = f"SELECT {COLUMNS} FROM security_events{where}{query.order}{limit}"
        return self._do(lambda db: [_event(row) for row in db.execute(sql, values).fetchall()])

    def purge(self, before: float) -> int:
        """Delete in batches, each its own transaction: the write lock of the file is the key
        store's too, and a purge of a busy month must not hold it for seconds."""

        def work(db: sqlite3.Connection) -> int:
            return db.execute(
                "DELETE FROM security_events WHERE id IN"
                " (SELECT id FROM security_events WHERE ts < ? LIMIT ?)",
                (before, PURGE_BATCH),
            ).rowcount

        removed = 0
        while True:
            count = self._do(work)
            removed += count
            if count < PURGE_BATCH:
                return removed

    def close(self) -> None:
        with self._lock:
            self._db.close()


class PostgresEventStore:
    """``security_events`` in schema ``schema``. ``migrate`` applies pending migrations first
    (the CLI's tests and tools); otherwise, as in a gateway, a schema behind this release is
    :class:`~bastion.store.schema.SchemaBehind`, naming ``bastion db upgrade``."""

    def __init__(
        self,
        dsn: str,
        schema: str = "bastion",
        *,
        connect_timeout: float = 5.0,
        migrate: bool = False,
    ) -> None:
        import psycopg
        from psycopg import sql

        from bastion.store import migrate_postgres
        from bastion.store.migrations import latest
        from bastion.store.schema import require

        self._psycopg = psycopg
        self._dsn = dsn
        self._schema = schema
        self._timeout = max(1, int(connect_timeout))
        self._lock = threading.Lock()
        self._conn: Any = None
        self._table = ""
        if migrate:
            migrate_postgres.upgrade(dsn, schema, timeout=connect_timeout)

        def check(conn: Any) -> str:
            current = migrate_postgres.current_version(conn, schema)
            require(migrate_postgres.where(schema), current, latest("postgres"))
            return str(sql.SQL("{}.security_events").format(sql.Identifier(schema)).as_string(conn))

        with self._lock:
            self._table = self._run(check)

    def _run(self, work: Callable[[Any], T]) -> T:
        psycopg = self._psycopg
        try:
            conn = self._conn
            if conn is None or conn.closed:
                conn = self._conn = psycopg.connect(
                    self._dsn, connect_timeout=self._timeout, autocommit=False
                )
            with conn.transaction():
                return work(conn)
        except psycopg.OperationalError as exc:
            conn, self._conn = self._conn, None
            if conn is not None:
                with contextlib.suppress(psycopg.Error):
                    conn.close()
            raise BackendUnavailable(
                f"PostgreSQL event store unavailable ({type(exc).__name__})"
            ) from exc
        except psycopg.Error as exc:
            raise StateError(f"PostgreSQL event store failed ({type(exc).__name__})") from exc

    def insert(self, events: Sequence[StoredEvent]) -> None:
        sql = f"INSERT INTO {self._table} ({COLUMNS}) VALUES ({', '.join(['%s'] * 9)})"

        def work(conn: Any) -> None:
            with conn.cursor() as cursor:
                cursor.executemany(sql, [_values(e) for e in events])

        with self._lock:
            self._run(work)

    def query(self, query: EventQuery) -> list[StoredEvent]:
        where, values = query.where("%s")
        limit = f" LIMIT {int(query.limit)}" if query.limit is not None else ""
        sql = f"SELECT {COLUMNS} FROM {self._table}{where}{query.order}{limit}"
        with self._lock:
            return self._run(lambda conn: [_event(r) for r in conn.execute(sql, values)])

    def purge(self, before: float) -> int:
        sql = f"DELETE FROM {self._table} WHERE ts < %s"
        with self._lock:
            return int(self._run(lambda conn: conn.execute(sql, (before,)).rowcount))

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                with contextlib.suppress(self._psycopg.Error):
                    conn.close()


def sqlite_location(state_dir: Path) -> Path:
    from bastion.store import SQLITE_FILE

    return state_dir / SQLITE_FILE


def open_event_store(
    state_dir: Path, dsn: str | None, schema: str, *, create: bool = True
) -> EventStore:
    """PostgreSQL when ``dsn`` is set, else the SQLite state store ``state_dir/keys.db`` (with
    the rows of an ``events.db`` of the release before moved in)."""
    if dsn is not None:
        return PostgresEventStore(dsn, schema)
    legacy = state_dir / LEGACY_SQLITE_FILE
    store = SqliteEventStore(sqlite_location(state_dir), create=create or legacy.exists())
    try:
        store.adopt_legacy_file(legacy)
    except BaseException:
        store.close()
        raise
    return store
