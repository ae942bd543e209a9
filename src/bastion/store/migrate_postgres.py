"""Versioned migrations on PostgreSQL: ``schema_version`` in the configured schema.

:func:`upgrade` is safe to run from any number of instances at once: it holds a session
advisory lock keyed by the schema while it reads what is applied and applies the rest, each
migration in its own transaction together with its ``schema_version`` row, so a migration is
either wholly applied and recorded or not at all. An instance that waited for the lock finds
nothing left to do. Driver errors are translated; no message carries the DSN.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg import sql

from bastion.errors import BackendUnavailable, StateError
from bastion.store.migrations import Migration, shipped
from bastion.store.schema import Applied, SchemaStatus

T = TypeVar("T")

LOCK_CLASS = 0x62617374  # "bast": the first key of bastion's advisory locks

_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS {schema}.schema_version (
    version integer PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at double precision NOT NULL
)
"""


def lock_key(schema: str) -> tuple[int, int]:
    """The advisory lock of ``schema``'s migrations (two int4 keys: bastion's, the schema's)."""
    digest = hashlib.sha256(schema.encode()).digest()
    return LOCK_CLASS, int.from_bytes(digest[:4], "big", signed=True)


def where(schema: str) -> str:
    return f"PostgreSQL schema {schema!r}"


def version_table(schema: str) -> str:
    """The quoted, qualified name of ``schema_version`` (for ``to_regclass``)."""
    quoted = '"' + schema.replace('"', '""') + '"'
    return f"{quoted}.schema_version"


def current_version(conn: psycopg.Connection[Any], schema: str) -> int:
    """The highest applied version; 0 when nothing was ever applied (no ``schema_version``)."""
    exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (version_table(schema),))
    row = exists.fetchone()
    if row is None or not row[0]:
        return 0
    found = conn.execute(
        sql.SQL("SELECT coalesce(max(version), 0) FROM {}.schema_version").format(
            sql.Identifier(schema)
        )
    ).fetchone()
    return int(found[0]) if found else 0


def _applied(conn: psycopg.Connection[Any], schema: str) -> tuple[Applied, ...]:
    if current_version(conn, schema) == 0:
        return ()
    rows = conn.execute(
        sql.SQL(
            "SELECT version, name, applied_at, checksum FROM {}.schema_version ORDER BY version"
        ).format(sql.Identifier(schema))
    ).fetchall()
    return tuple(Applied(int(v), str(n), float(at), str(c)) for v, n, at, c in rows)


def _create_schema(conn: psycopg.Connection[Any], schema: str) -> None:
    """Create ``schema`` unless it exists: ``CREATE SCHEMA IF NOT EXISTS`` would still need the
    right to create schemas in the database, which a role owning only its schema lacks."""
    found = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
    if found is None:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))


def _translate(work: Callable[[], T], what: str) -> T:
    try:
        return work()
    except psycopg.OperationalError as exc:
        raise BackendUnavailable(
            f"PostgreSQL unavailable while {what} ({type(exc).__name__})"
        ) from exc
    except psycopg.Error as exc:
        state = f", SQLSTATE {exc.sqlstate}" if exc.sqlstate else ""
        raise StateError(f"PostgreSQL failed while {what} ({type(exc).__name__}{state})") from exc


@contextmanager
def _connection(dsn: str, timeout: float) -> Iterator[psycopg.Connection[Any]]:
    conn = psycopg.connect(dsn, autocommit=True, connect_timeout=max(1, int(timeout)))
    try:
        yield conn
    finally:
        conn.close()


def status(
    dsn: str, schema: str, migrations: Sequence[Migration] | None = None, *, timeout: float = 5.0
) -> SchemaStatus:
    """What is applied in ``schema`` and what is pending (reads only)."""
    todo = tuple(migrations) if migrations is not None else shipped("postgres")

    def work() -> SchemaStatus:
        with _connection(dsn, timeout) as conn:
            return SchemaStatus(where(schema), _applied(conn, schema), todo)

    return _translate(work, f"reading the schema version of {schema!r}")


def upgrade(
    dsn: str, schema: str, migrations: Sequence[Migration] | None = None, *, timeout: float = 5.0
) -> list[Migration]:
    """Apply every pending migration in order; the ones this call applied (often none)."""
    todo = tuple(migrations) if migrations is not None else shipped("postgres")
    ident = sql.Identifier(schema)
    done: list[Migration] = []
    running: list[Migration] = []

    def apply(conn: psycopg.Connection[Any], migration: Migration) -> None:
        running[:] = [migration]
        with conn.transaction():
            conn.execute(sql.SQL(migration.sql).format(schema=ident))
            conn.execute(
                sql.SQL(
                    "INSERT INTO {}.schema_version (version, name, checksum, applied_at)"
                    " VALUES (%s, %s, %s, %s)"
                ).format(ident),
                (migration.version, migration.name, migration.checksum, time.time()),
            )
        running.clear()
        done.append(migration)

    def work() -> list[Migration]:
        with _connection(dsn, timeout) as conn:
            if {m.version for m in todo} <= {a.version for a in _applied(conn, schema)}:
                return done  # current: no lock, no DDL (a role without DDL rights gets here)
            conn.execute("SELECT pg_advisory_lock(%s, %s)", lock_key(schema))
            try:
                with conn.transaction():
                    _create_schema(conn, schema)
                    conn.execute(sql.SQL(_VERSION_TABLE).format(schema=ident))
                applied = {a.version for a in _applied(conn, schema)}
                for migration in todo:
                    if migration.version not in applied:
                        apply(conn, migration)
            finally:
                if not conn.closed and not conn.broken:
                    conn.execute("SELECT pg_advisory_unlock(%s, %s)", lock_key(schema))
        return done

    try:
        return _translate(work, f"upgrading schema {schema!r}")
    except BackendUnavailable:
        raise
    except StateError as exc:
        if running:
            raise StateError(
                f"{exc.message}; migration {running[0]} was rolled back, the schema stays at"
                f" the version before it"
            ) from exc
        raise
