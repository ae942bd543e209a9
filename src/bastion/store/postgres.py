# ruff: noqa: S608  (table names are composed once by psycopg.sql.Identifier; values are bound)
"""The PostgreSQL :class:`KeyStore`: the records every gateway instance shares.

Tables live in the configured schema (``postgres.schema``) and are made by the versioned
migrations (:mod:`.migrate_postgres`). The CLI's store (``migrate=True``) applies what is
pending; a gateway's only checks the version and says ``run bastion db upgrade`` when the
schema is behind. The revision is one row updated inside each writing transaction: its row
lock orders writers, so a revision is never visible before every smaller one is committed,
and a gateway reading ``revision > N`` can never skip a change.

Driver errors are translated here: an unreachable server is
:class:`~bastion.errors.BackendUnavailable`, anything else :class:`~bastion.errors.StateError`,
and neither message carries the DSN (it may hold a password).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import psycopg
from psycopg import sql

from bastion.errors import BackendUnavailable, StateError
from bastion.store import migrate_postgres
from bastion.store.migrations import latest
from bastion.store.records import KeyRecord
from bastion.store.schema import require
from bastion.store.sqlite import COLUMNS, record_from_row, record_values

T = TypeVar("T")


class PostgresKeyStore:
    """API keys in schema ``schema`` of the database at ``dsn`` (one connection, locked).

    ``migrate`` applies pending migrations first; otherwise a schema behind this release is
    :class:`~bastion.store.schema.SchemaBehind`.
    """

    def __init__(
        self,
        dsn: str,
        schema: str = "bastion",
        *,
        connect_timeout: float = 5.0,
        migrate: bool = True,
    ) -> None:
        self._dsn = dsn
        self._schema = schema
        self._timeout = max(1, int(connect_timeout))
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        self._q: dict[str, str] = {}
        if migrate:
            migrate_postgres.upgrade(dsn, schema, timeout=connect_timeout)
        with self._lock:
            try:
                self._run(self._prepare)
            except BaseException:
                self._drop()
                raise

    # -- connection and error translation

    def _connect(self) -> psycopg.Connection[Any]:
        conn = self._conn
        if conn is None or conn.closed:
            conn = self._conn = psycopg.connect(
                self._dsn, connect_timeout=self._timeout, autocommit=False
            )
        return conn

    def _run(self, work: Callable[[psycopg.Connection[Any]], T], *, read: bool = False) -> T:
        """``work`` in one transaction; driver errors become bastion's (lock held by caller).

        A ``read`` that fails on a connection the server dropped meanwhile (a restart, a
        failover, an idle timeout) is tried once more on a new connection, so that the first
        read after an outage does not wait for the next sync interval. A write is not retried:
        it may have committed before the connection broke.
        """
        reused = self._conn is not None and not self._conn.closed
        try:
            try:
                return self._transaction(work)
            except psycopg.OperationalError:
                if not (read and reused):
                    raise
                self._drop()
                return self._transaction(work)
        except psycopg.OperationalError as exc:
            self._drop()
            raise BackendUnavailable(
                f"PostgreSQL key store unavailable ({type(exc).__name__})"
            ) from exc
        except psycopg.Error as exc:
            raise StateError(f"PostgreSQL key store failed ({type(exc).__name__})") from exc

    def _transaction(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        conn = self._connect()
        with conn.transaction():
            return work(conn)

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()

    def _prepare(self, conn: psycopg.Connection[Any]) -> None:
        current = migrate_postgres.current_version(conn, self._schema)
        require(migrate_postgres.where(self._schema), current, latest("postgres"))
        schema = sql.Identifier(self._schema)
        table = sql.SQL("{}.api_keys").format(schema).as_string(conn)
        state = sql.SQL("{}.api_key_state").format(schema).as_string(conn)
        self._q = {
            "keys": table,
            "state": state,
            "insert": f"INSERT INTO {table} ({COLUMNS}) VALUES ({', '.join(['%s'] * 12)})",
            "select": f"SELECT {COLUMNS} FROM {table}",
            "next": f"UPDATE {state} SET revision = revision + 1 WHERE id = 1 RETURNING revision",
        }

    def _next_revision(self, conn: psycopg.Connection[Any]) -> int:
        row = conn.execute(self._q["next"]).fetchone()
        assert row is not None
        return int(row[0])

    # -- the contract

    def insert(self, record: KeyRecord) -> KeyRecord:
        def work(conn: psycopg.Connection[Any]) -> int:
            exists = conn.execute(f"SELECT 1 FROM {self._q['keys']} WHERE id = %s", (record.id,))
            if exists.fetchone() is not None:
                raise StateError(f"API key {record.id} already exists; expected a new key id")
            revision = self._next_revision(conn)
            conn.execute(self._q["insert"], record_values(record, revision))
            return revision

        with self._lock:
            return record.with_revision(self._run(work))

    def get(self, key_id: str) -> KeyRecord | None:
        def work(conn: psycopg.Connection[Any]) -> KeyRecord | None:
            row = conn.execute(f"{self._q['select']} WHERE id = %s", (key_id,)).fetchone()
            return record_from_row(row) if row else None

        with self._lock:
            return self._run(work, read=True)

    def records(self, consumer: str | None = None) -> list[KeyRecord]:
        def work(conn: psycopg.Connection[Any]) -> list[KeyRecord]:
            if consumer is None:
                cursor = conn.execute(f"{self._q['select']} ORDER BY created_at, id")
            else:
                cursor = conn.execute(
                    f"{self._q['select']} WHERE consumer = %s ORDER BY created_at, id",
                    (consumer,),
                )
            return [record_from_row(row) for row in cursor.fetchall()]

        with self._lock:
            return self._run(work, read=True)

    def revoke(self, key_id: str, at: float) -> KeyRecord | None:
        def work(conn: psycopg.Connection[Any]) -> KeyRecord | None:
            row = conn.execute(
                f"SELECT revoked_at FROM {self._q['keys']} WHERE id = %s FOR UPDATE", (key_id,)
            ).fetchone()
            if row is None:
                return None
            if row[0] is None:
                revision = self._next_revision(conn)
                conn.execute(
                    f"UPDATE {self._q['keys']} SET revoked_at = %s, revision = %s WHERE id = %s",
                    (at, revision, key_id),
                )
            found = conn.execute(f"{self._q['select']} WHERE id = %s", (key_id,)).fetchone()
            return record_from_row(found) if found else None

        with self._lock:
            return self._run(work)

    def rotate(self, key_id: str, new: KeyRecord, grace_until: float) -> KeyRecord | None:
        def work(conn: psycopg.Connection[Any]) -> KeyRecord | None:
            row = conn.execute(
                f"SELECT expires_at FROM {self._q['keys']} WHERE id = %s FOR UPDATE", (key_id,)
            ).fetchone()
            if row is None:
                return None
            conn.execute(self._q["insert"], record_values(new, self._next_revision(conn)))
            conn.execute(
                f"UPDATE {self._q['keys']} SET expires_at = %s, replaced_by = %s, revision = %s"
                " WHERE id = %s",
                (min(float(row[0]), grace_until), new.id, self._next_revision(conn), key_id),
            )
            found = conn.execute(f"{self._q['select']} WHERE id = %s", (key_id,)).fetchone()
            return record_from_row(found) if found else None

        with self._lock:
            return self._run(work)

    def revision(self) -> int:
        def work(conn: psycopg.Connection[Any]) -> int:
            row = conn.execute(f"SELECT revision FROM {self._q['state']} WHERE id = 1").fetchone()
            assert row is not None
            return int(row[0])

        with self._lock:
            return self._run(work, read=True)

    def changes(self, since: int) -> tuple[int, list[KeyRecord]]:
        def work(conn: psycopg.Connection[Any]) -> tuple[int, list[KeyRecord]]:
            # One snapshot for both reads: the revision and the rows it covers agree.
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            row = conn.execute(f"SELECT revision FROM {self._q['state']} WHERE id = 1").fetchone()
            assert row is not None
            rows = conn.execute(
                f"{self._q['select']} WHERE revision > %s ORDER BY revision", (since,)
            ).fetchall()
            return int(row[0]), [record_from_row(r) for r in rows]

        with self._lock:
            return self._run(work, read=True)

    def touch(self, used: Mapping[str, float]) -> None:
        if not used:
            return

        def work(conn: psycopg.Connection[Any]) -> None:
            with conn.cursor() as cursor:
                cursor.executemany(
                    f"UPDATE {self._q['keys']} SET last_used_at = %s"
                    " WHERE id = %s AND (last_used_at IS NULL OR last_used_at < %s)",
                    [(at, key_id, at) for key_id, at in sorted(used.items())],
                )

        with self._lock:
            self._run(work)

    def pepper_check(self, fingerprint: str) -> bool:
        def work(conn: psycopg.Connection[Any]) -> bool:
            row = conn.execute(
                f"SELECT pepper_check FROM {self._q['state']} WHERE id = 1 FOR UPDATE"
            ).fetchone()
            assert row is not None
            if row[0] is None:
                conn.execute(
                    f"UPDATE {self._q['state']} SET pepper_check = %s WHERE id = 1",
                    (fingerprint,),
                )
                return True
            return bool(row[0] == fingerprint)

        with self._lock:
            return self._run(work)

    def close(self) -> None:
        with self._lock:
            self._drop()
