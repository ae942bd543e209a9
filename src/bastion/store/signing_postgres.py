# ruff: noqa: S608  (table names are composed once by psycopg.sql.Identifier; values are bound)
"""The PostgreSQL :class:`~bastion.auth.jwt.keystore.SigningKeyStore`: signing keys every gateway
instance shares, so that all of them sign with the same key and publish the same JWKS.

Private keys are sealed before they reach the database: AES-256-GCM under a key derived (HKDF)
from the API-key pepper, which lives outside the database, the key's ``kid`` and ``alg`` bound
as associated data. A database dump alone yields no signing key, and a row moved to another
``kid`` does not open. The store remembers a fingerprint of the sealing key, so an instance with
another pepper says so instead of failing on every key.

The tables come from the versioned migrations (:mod:`.migrate_postgres`): with ``migrate``
(the CLI) pending ones are applied at the first connection; without (a gateway) a schema behind
this release is refused with ``run bastion db upgrade``.

Each primitive is one transaction: ``append`` locks the one state row, compares the newest kid
with the caller's, inserts and moves the version; ``delete`` the same; ``version`` reads one
integer (instances poll it every ``resync_interval``). Driver errors are translated here, and no
message carries the DSN.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
from collections.abc import Awaitable, Callable, Collection
from typing import Any, TypeVar

import psycopg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from psycopg import sql

from bastion.auth.jwt.keystore import StoredSigningKey
from bastion.errors import BackendUnavailable, StateError
from bastion.store import migrate_postgres
from bastion.store.migrations import latest
from bastion.store.schema import require

T = TypeVar("T")

_NONCE = 12


class KeySealer:
    """AES-256-GCM under a key derived from the pepper; ``fingerprint`` identifies that key."""

    def __init__(self, pepper: bytes) -> None:
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=b"bastion", info=b"signing-keys/v1"
        ).derive(pepper)
        self._aead = AESGCM(key)
        check = hmac.digest(key, b"bastion signing-key sealing fingerprint", "sha256")
        self.fingerprint = check[:16].hex()

    def seal(self, key: StoredSigningKey) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, key.private_pem, _aad(key.kid, key.alg))

    def open(self, kid: str, alg: str, sealed: bytes) -> bytes:
        try:
            return self._aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], _aad(kid, alg))
        except (InvalidTag, ValueError):
            raise StateError(f"signing key {kid} in PostgreSQL does not open") from None

    def __repr__(self) -> str:
        return f"KeySealer(fingerprint={self.fingerprint})"


def _aad(kid: str, alg: str) -> bytes:
    return hashlib.sha256(f"{kid}\x00{alg}".encode()).digest()


class PostgresSigningKeyStore:
    """Signing keys in schema ``schema`` of the database at ``dsn`` (one async connection).

    ``sealer`` may be a function that makes one: it is then called at the first use, so that a
    missing pepper is an error of the store (logged, retried) rather than of the start.
    """

    def __init__(
        self,
        dsn: str,
        sealer: KeySealer | Callable[[], KeySealer],
        schema: str = "bastion",
        *,
        connect_timeout: float = 5.0,
        migrate: bool = True,
    ) -> None:
        self._dsn = dsn
        self._migrate = migrate
        self._sealer_value = sealer if isinstance(sealer, KeySealer) else None
        self._make_sealer = None if isinstance(sealer, KeySealer) else sealer
        self._schema = schema
        self._timeout = max(1, int(connect_timeout))
        self._lock = asyncio.Lock()
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._q: dict[str, str] = {}

    @property
    def _sealer(self) -> KeySealer:
        if self._sealer_value is None:
            assert self._make_sealer is not None
            self._sealer_value = self._make_sealer()
        return self._sealer_value

    # -- connection and error translation

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        conn = self._conn
        if conn is not None and not conn.closed:
            return conn
        if self._migrate:
            await asyncio.to_thread(
                migrate_postgres.upgrade, self._dsn, self._schema, timeout=self._timeout
            )
            self._migrate = False
        conn = await psycopg.AsyncConnection.connect(
            self._dsn, connect_timeout=self._timeout, autocommit=False
        )
        try:
            async with conn.transaction():
                sealed_alike = await self._create_schema(conn)
        except BaseException:
            await conn.close()
            raise
        if not sealed_alike:
            await conn.close()
            raise StateError(
                "the signing keys in PostgreSQL were sealed under another pepper; expected the"
                " same pepper ($BASTION_API_KEY_PEPPER or auth.api_keys.pepper_file) on every"
                " instance"
            )
        self._conn = conn
        return conn

    async def _run(
        self, work: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]], *, read: bool = False
    ) -> T:
        """``work`` in one transaction; driver errors become bastion's. A ``read`` on a
        connection the server dropped meanwhile is tried once more on a new one (see
        :meth:`bastion.store.postgres.PostgresKeyStore._run`); a write is not."""
        async with self._lock:
            reused = self._conn is not None and not self._conn.closed
            try:
                try:
                    return await self._transaction(work)
                except psycopg.OperationalError:
                    if not (read and reused):
                        raise
                    await self._drop()
                    return await self._transaction(work)
            except psycopg.OperationalError as exc:
                await self._drop()
                raise BackendUnavailable(
                    f"PostgreSQL signing key store unavailable ({type(exc).__name__})"
                ) from exc
            except psycopg.Error as exc:
                raise StateError(
                    f"PostgreSQL signing key store failed ({type(exc).__name__})"
                ) from exc

    async def _transaction(self, work: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
        conn = await self._connect()
        async with conn.transaction():
            return await work(conn)

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                await conn.close()

    async def _create_schema(self, conn: psycopg.AsyncConnection[Any]) -> bool:
        """Check the schema version; whether the stored sealing fingerprint is ours (the
        first instance stores its own)."""
        schema = sql.Identifier(self._schema)
        found = await conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL", (migrate_postgres.version_table(self._schema),)
        )
        exists = await found.fetchone()
        current = 0
        if exists is not None and exists[0]:
            cursor = await conn.execute(
                sql.SQL("SELECT coalesce(max(version), 0) FROM {}.schema_version").format(schema)
            )
            row = await cursor.fetchone()
            current = int(row[0]) if row else 0
        require(migrate_postgres.where(self._schema), current, latest("postgres"))
        keys = sql.SQL("{}.signing_keys").format(schema).as_string(conn)
        state = sql.SQL("{}.signing_key_state").format(schema).as_string(conn)
        self._q = {
            "keys": keys,
            "state": state,
            "lock": f"SELECT version, seal_check FROM {state} WHERE id = 1 FOR UPDATE",
            "bump": f"UPDATE {state} SET version = version + 1 WHERE id = 1",
        }
        row = await (await conn.execute(self._q["lock"])).fetchone()
        assert row is not None
        if row[1] is None:
            await conn.execute(
                f"UPDATE {state} SET seal_check = %s WHERE id = 1", (self._sealer.fingerprint,)
            )
            return True
        return bool(row[1] == self._sealer.fingerprint)

    # -- the contract

    async def load(self) -> list[StoredSigningKey]:
        async def work(conn: psycopg.AsyncConnection[Any]) -> list[tuple[Any, ...]]:
            cursor = await conn.execute(
                f"SELECT kid, alg, created_at, activates_at, sealed_key FROM {self._q['keys']}"
            )
            return await cursor.fetchall()

        rows = await self._run(work, read=True)
        return [
            StoredSigningKey(
                kid=kid,
                alg=alg,
                created_at=float(created_at),
                activates_at=float(activates_at),
                private_pem=self._sealer.open(kid, alg, bytes(sealed)),
            )
            for kid, alg, created_at, activates_at, sealed in rows
        ]

    async def version(self) -> object:
        async def work(conn: psycopg.AsyncConnection[Any]) -> int:
            cursor = await conn.execute(f"SELECT version FROM {self._q['state']} WHERE id = 1")
            row = await cursor.fetchone()
            assert row is not None
            return int(row[0])

        return await self._run(work, read=True)

    async def append(self, key: StoredSigningKey, *, after: str | None) -> bool:
        async def work(conn: psycopg.AsyncConnection[Any]) -> bool:
            await conn.execute(self._q["lock"])  # orders every writer behind one row lock
            cursor = await conn.execute(
                f"SELECT kid FROM {self._q['keys']}"
                ' ORDER BY created_at DESC, kid COLLATE "C" DESC LIMIT 1'
            )
            row = await cursor.fetchone()
            if (row[0] if row else None) != after:
                return False
            await conn.execute(
                f"INSERT INTO {self._q['keys']}"
                " (kid, alg, created_at, activates_at, sealed_key) VALUES (%s, %s, %s, %s, %s)",
                (key.kid, key.alg, key.created_at, key.activates_at, self._sealer.seal(key)),
            )
            await conn.execute(self._q["bump"])
            return True

        return await self._run(work)

    async def delete(self, kids: Collection[str]) -> None:
        async def work(conn: psycopg.AsyncConnection[Any]) -> None:
            await conn.execute(self._q["lock"])
            cursor = await conn.execute(
                f"DELETE FROM {self._q['keys']} WHERE kid = ANY(%s)", (list(kids),)
            )
            if cursor.rowcount:
                await conn.execute(self._q["bump"])

        if kids:
            await self._run(work)

    async def close(self) -> None:
        async with self._lock:
            await self._drop()

    def __repr__(self) -> str:
        return f"PostgresSigningKeyStore(schema={self._schema!r})"
