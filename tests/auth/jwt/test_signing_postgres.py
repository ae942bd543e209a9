"""The PostgreSQL signing-key store beyond the shared contract: private keys sealed under the
pepper, separate connections racing to rotate, a server that goes away, no DSN in errors."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import psycopg
import pytest
from psycopg import sql

from bastion.auth.jwt.keystore import generate_key
from bastion.auth.jwt.signing import SigningKeys
from bastion.errors import BackendUnavailable, StateError
from bastion.store.signing_postgres import KeySealer, PostgresSigningKeyStore
from tests.services.postgres_service import PostgresCluster

PEPPER = b"signing-test-pepper-" + b"q" * 32
OTHER = b"another-test-pepper-" + b"z" * 32
T0 = 2_000_000_000.0
ISS = "https://gateway.example.test"


def rows(dsn: str, schema: str) -> list[tuple[str, bytes]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        query = sql.SQL("SELECT kid, sealed_key FROM {}.signing_keys").format(
            sql.Identifier(schema)
        )
        return [(kid, bytes(sealed)) for kid, sealed in conn.execute(query).fetchall()]


async def test_private_keys_are_sealed_in_the_database(postgres_dsn: str, pg_schema: str) -> None:
    store = PostgresSigningKeyStore(postgres_dsn, KeySealer(PEPPER), pg_schema)
    try:
        key = generate_key("EdDSA", now=T0, activates_at=T0)
        assert await store.append(key, after=None)
        ((kid, sealed),) = rows(postgres_dsn, pg_schema)
        assert kid == key.kid
        assert b"PRIVATE KEY" not in sealed
        assert key.private_pem not in sealed
        (loaded,) = await store.load()
        assert loaded.private_pem == key.private_pem
    finally:
        await store.close()


async def test_another_pepper_is_refused_at_once(postgres_dsn: str, pg_schema: str) -> None:
    first = PostgresSigningKeyStore(postgres_dsn, KeySealer(PEPPER), pg_schema)
    await first.append(generate_key("EdDSA", now=T0, activates_at=T0), after=None)
    await first.close()
    other = PostgresSigningKeyStore(postgres_dsn, KeySealer(OTHER), pg_schema)
    with pytest.raises(StateError, match="sealed under another pepper"):
        await other.load()
    await other.close()


async def test_a_sealed_key_moved_to_another_kid_does_not_open(
    postgres_dsn: str, pg_schema: str
) -> None:
    store = PostgresSigningKeyStore(postgres_dsn, KeySealer(PEPPER), pg_schema)
    try:
        first = generate_key("EdDSA", now=T0, activates_at=T0)
        second = generate_key("EdDSA", now=T0 + 1, activates_at=T0 + 1)
        await store.append(first, after=None)
        await store.append(second, after=first.kid)
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            table = sql.Identifier(pg_schema, "signing_keys")
            conn.execute(
                sql.SQL(
                    "UPDATE {} SET sealed_key = (SELECT sealed_key FROM {} WHERE kid = %s)"
                    " WHERE kid = %s"
                ).format(table, table),
                (first.kid, second.kid),
            )
        with pytest.raises(StateError, match=f"signing key {second.kid} in PostgreSQL"):
            await store.load()
    finally:
        await store.close()


async def test_instances_on_separate_connections_rotate_once(
    postgres_dsn: str, pg_schema: str
) -> None:
    stores = [PostgresSigningKeyStore(postgres_dsn, KeySealer(PEPPER), pg_schema) for _ in range(4)]
    clock = lambda: T0  # noqa: E731
    instances = [
        SigningKeys(s, issuer=ISS, clock=clock, rotation_interval=3600.0, publish_ahead=600.0)
        for s in stores
    ]
    try:
        await asyncio.gather(*(keys.load() for keys in instances))
        assert len(await stores[0].load()) == 1
        later = T0 + 3000.0  # inside publish_ahead of the scheduled rotation
        await asyncio.gather(*(keys.maintain(later) for keys in instances))
        assert len(await stores[0].load()) == 2
        kids = {keys.stored_keys()[-1].kid for keys in instances}
        assert len(kids) == 1
        version = await stores[0].version()
        assert isinstance(version, int)
        assert await stores[1].version() == version
    finally:
        for store in stores:
            await store.close()


async def test_a_server_that_goes_away_is_backend_unavailable_without_the_dsn(
    postgres_cluster_factory: Callable[[], PostgresCluster],
) -> None:
    cluster = postgres_cluster_factory()
    dsn = cluster.dsn.replace("postgres@", "postgres:hunter2@")
    store = PostgresSigningKeyStore(dsn, KeySealer(PEPPER), "bastion", connect_timeout=1)
    try:
        await store.append(generate_key("EdDSA", now=T0, activates_at=T0), after=None)
        cluster.stop()
        with pytest.raises(BackendUnavailable) as caught:
            await store.load()
        assert "hunter2" not in str(caught.value)
        assert str(cluster.port) not in str(caught.value)
        cluster.start()
        assert len(await store.load()) == 1  # reconnects
    finally:
        await store.close()


async def test_a_missing_pepper_is_an_error_of_the_store_not_of_the_start(
    postgres_dsn: str, pg_schema: str
) -> None:
    def no_pepper() -> KeySealer:
        raise StateError("no pepper")

    store = PostgresSigningKeyStore(postgres_dsn, no_pepper, pg_schema)
    with pytest.raises(StateError, match="no pepper"):
        await store.load()
    await store.close()
