# ruff: noqa: S608  (table names are fixed or composed by psycopg.sql.Identifier; values are bound)
"""The event store: security events kept for ``bastion events``, purged past their age.

SQLite (``state_dir/events.db``, owner-only, WAL so the CLI reads while gateways write) by
default, PostgreSQL when ``postgres.dsn`` is set. Rows hold a few indexed columns (time, action,
outcome, consumer, client IP) and the whole redacted ECS line, so an export is exactly what the
log sinks wrote. The tables are created by one idempotent function per backend
(:func:`create_sqlite_tables`, :func:`create_postgres_tables`), ready for versioned migrations.
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

SQLITE_EVENTS_FILE = "events.db"
COLUMNS = "ts, dataset, action, outcome, user_id, client_ip, request_id, status, document"
_SCHEMA_LOCK = 0x62617375  # advisory lock id while creating the events tables

SQLITE_DDL = """
CREATE TABLE IF NOT EXISTS security_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    dataset TEXT NOT NULL,
    action TEXT NOT NULL,
    outcome TEXT NOT NULL,
    user_id TEXT,
    client_ip TEXT NOT NULL DEFAULT '',
    request_id TEXT NOT NULL DEFAULT '',
    status INTEGER,
    document TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS security_events_ts ON security_events (ts);
CREATE INDEX IF NOT EXISTS security_events_user ON security_events (user_id, ts);
CREATE INDEX IF NOT EXISTS security_events_ip ON security_events (client_ip, ts);
"""

POSTGRES_DDL = """
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {schema}.security_events (
    id bigserial PRIMARY KEY,
    ts double precision NOT NULL,
    dataset text NOT NULL,
    action text NOT NULL,
    outcome text NOT NULL,
    user_id text,
    client_ip text NOT NULL DEFAULT '',
    request_id text NOT NULL DEFAULT '',
    status integer,
    document text NOT NULL
);
CREATE INDEX IF NOT EXISTS security_events_ts ON {schema}.security_events (ts);
CREATE INDEX IF NOT EXISTS security_events_user ON {schema}.security_events (user_id, ts);
CREATE INDEX IF NOT EXISTS security_events_ip ON {schema}.security_events (client_ip, ts)
"""


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


def create_sqlite_tables(db: sqlite3.Connection) -> None:
    """Create the event tables if missing (idempotent)."""
    db.executescript(SQLITE_DDL)


class SqliteEventStore:
    def __init__(self, path: Path, *, create: bool = True) -> None:
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
            create_sqlite_tables(self._db)
        except (sqlite3.Error, OSError) as exc:
            raise StateError(f"event store {path} cannot be opened ({type(exc).__name__})") from exc

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
        sql = f"SELECT {COLUMNS} FROM security_events{where} ORDER BY ts, id{limit}"
        return self._do(lambda db: [_event(row) for row in db.execute(sql, values).fetchall()])

    def purge(self, before: float) -> int:
        def work(db: sqlite3.Connection) -> int:
            return db.execute("DELETE FROM security_events WHERE ts < ?", (before,)).rowcount

        return self._do(work)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def create_postgres_tables(conn: Any, schema: str) -> None:
    """Create the event tables in ``schema`` if missing (idempotent; advisory-locked so that
    instances starting together do not race)."""
    from psycopg import sql

    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
    for statement in POSTGRES_DDL.split(";"):
        if statement.strip():
            conn.execute(sql.SQL(statement).format(schema=sql.Identifier(schema)))


class PostgresEventStore:
    def __init__(self, dsn: str, schema: str = "bastion", *, connect_timeout: float = 5.0) -> None:
        import psycopg
        from psycopg import sql

        self._psycopg = psycopg
        self._dsn = dsn
        self._schema = schema
        self._timeout = max(1, int(connect_timeout))
        self._lock = threading.Lock()
        self._conn: Any = None
        self._table = ""
        with self._lock:
            self._run(lambda conn: create_postgres_tables(conn, schema))
            self._table = self._run(
                lambda conn: (
                    sql.SQL("{}.security_events").format(sql.Identifier(schema)).as_string(conn)
                )
            )

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
        sql = f"SELECT {COLUMNS} FROM {self._table}{where} ORDER BY ts, id{limit}"
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


def open_event_store(
    state_dir: Path, dsn: str | None, schema: str, *, create: bool = True
) -> EventStore:
    """PostgreSQL when ``dsn`` is set, else ``state_dir/events.db``."""
    if dsn is not None:
        return PostgresEventStore(dsn, schema)
    return SqliteEventStore(state_dir / SQLITE_EVENTS_FILE, create=create)
