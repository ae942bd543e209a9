"""Versioned migrations on the real PostgreSQL: applied in order, once, each wholly or not at
all; a database the pre-migration releases created upgrades as it is; a gateway's store
refuses a schema behind it and names the command that fixes it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import psycopg
import pytest
from psycopg import sql

from bastion.errors import BackendUnavailable, StateError
from bastion.store import migrate_postgres
from bastion.store.migrations import Migration, shipped
from bastion.store.postgres import PostgresKeyStore
from bastion.store.records import KeyRecord
from bastion.store.schema import SchemaBehind
from bastion.store.signing_postgres import KeySealer, PostgresSigningKeyStore
from tests.services.postgres_service import PostgresCluster
from tests.store.legacy import POSTGRES_KEYS, POSTGRES_SIGNING

ALL = [m.version for m in shipped("postgres")]
PEPPER = b"migration-test-pepper-" + b"p" * 32


def record(key_id: str = "k1", consumer: str = "acme") -> KeyRecord:
    return KeyRecord(id=key_id, hash="ab" * 32, consumer=consumer, created_at=1.0, expires_at=9e9)


def run_sql(dsn: str, schema: str, text: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL(text).format(schema=sql.Identifier(schema)))  # type: ignore[arg-type]


def columns(dsn: str, schema: str, table: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            (schema, table),
        ).fetchall()
    return [r[0] for r in rows]


def versions(dsn: str, schema: str) -> list[tuple[int, str]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            sql.SQL("SELECT version, name FROM {}.schema_version ORDER BY version").format(
                sql.Identifier(schema)
            )
        ).fetchall()
    return [(int(v), str(n)) for v, n in rows]


def test_a_fresh_schema_gets_every_migration_once(postgres_dsn: str, pg_schema: str) -> None:
    before = migrate_postgres.status(postgres_dsn, pg_schema)
    assert (before.current, before.latest) == (0, len(shipped("postgres")))
    applied = migrate_postgres.upgrade(postgres_dsn, pg_schema)
    assert [m.version for m in applied] == list(range(1, before.latest + 1))
    assert migrate_postgres.upgrade(postgres_dsn, pg_schema) == []  # nothing left
    after = migrate_postgres.status(postgres_dsn, pg_schema)
    assert after.current == after.latest
    assert after.pending == ()
    assert after.modified == ()
    assert versions(postgres_dsn, pg_schema)[0] == (1, "initial")
    assert "revision" in columns(postgres_dsn, pg_schema, "api_keys")
    assert "sealed_key" in columns(postgres_dsn, pg_schema, "signing_keys")


async def test_a_database_made_before_migrations_upgrades_with_its_records(
    postgres_dsn: str, pg_schema: str
) -> None:
    # Exactly what the earlier releases left: their tables, a key and a signing key, no versions.
    run_sql(postgres_dsn, pg_schema, POSTGRES_KEYS)
    run_sql(postgres_dsn, pg_schema, POSTGRES_SIGNING)
    with psycopg.connect(postgres_dsn) as conn:
        conn.execute(
            sql.SQL(
                "INSERT INTO {}.api_keys (id, hash, consumer, created_at, expires_at, revision)"
                " VALUES ('old1', %s, 'legacy', 1, 9e9, 1)"
            ).format(sql.Identifier(pg_schema)),
            ("cd" * 32,),
        )
        conn.execute(
            sql.SQL("UPDATE {}.api_key_state SET revision = 1, pepper_check = 'fp'").format(
                sql.Identifier(pg_schema)
            )
        )
    with pytest.raises(SchemaBehind, match="run `bastion db upgrade`"):
        PostgresKeyStore(postgres_dsn, pg_schema, migrate=False)

    assert [m.version for m in migrate_postgres.upgrade(postgres_dsn, pg_schema)] == ALL

    store = PostgresKeyStore(postgres_dsn, pg_schema, migrate=False)
    try:
        old = store.get("old1")
        assert old is not None
        assert old.consumer == "legacy"
        assert old.revision == 1
        assert store.revision() == 1
        assert store.pepper_check("fp")
        assert store.insert(record("new1")).revision == 2  # the revision counter carried over
    finally:
        store.close()
    signing = PostgresSigningKeyStore(postgres_dsn, KeySealer(PEPPER), pg_schema, migrate=False)
    try:
        assert await signing.load() == []
    finally:
        await signing.close()


def test_a_gateway_store_refuses_a_schema_behind_it_without_changing_it(
    postgres_dsn: str, pg_schema: str
) -> None:
    with pytest.raises(SchemaBehind) as caught:
        PostgresKeyStore(postgres_dsn, pg_schema, migrate=False)
    assert caught.value.code == "store.schema_behind"
    assert "version 0" in caught.value.message
    assert "postgresql://" not in caught.value.message
    assert migrate_postgres.status(postgres_dsn, pg_schema).current == 0  # nothing created
    assert columns(postgres_dsn, pg_schema, "api_keys") == []


async def test_a_gateway_signing_store_refuses_a_schema_behind_it(
    postgres_dsn: str, pg_schema: str
) -> None:
    store = PostgresSigningKeyStore(postgres_dsn, KeySealer(PEPPER), pg_schema, migrate=False)
    with pytest.raises(SchemaBehind, match="bastion db upgrade"):
        await store.load()
    await store.close()


def test_a_schema_ahead_of_this_release_is_accepted(postgres_dsn: str, pg_schema: str) -> None:
    """A newer release migrated first (a rolling upgrade): older instances keep working."""
    later = Migration(len(shipped("postgres")) + 1, "later", "CREATE TABLE {schema}.later (x int)")
    migrate_postgres.upgrade(postgres_dsn, pg_schema, [*shipped("postgres"), later])
    store = PostgresKeyStore(postgres_dsn, pg_schema, migrate=False)
    try:
        assert store.insert(record()).revision == 1
    finally:
        store.close()


def test_migrations_apply_in_order_and_a_failing_one_is_rolled_back_whole(
    postgres_dsn: str, pg_schema: str
) -> None:
    base = list(shipped("postgres"))
    n = len(base)
    add = Migration(n + 1, "add_owner", "ALTER TABLE {schema}.api_keys ADD COLUMN owner text")
    index = Migration(n + 2, "owner_index", "CREATE INDEX owner_idx ON {schema}.api_keys (owner)")
    broken = Migration(
        n + 3,
        "broken",
        "ALTER TABLE {schema}.api_keys ADD COLUMN half text;"
        " ALTER TABLE {schema}.no_such_table ADD COLUMN x int",
    )
    applied = migrate_postgres.upgrade(postgres_dsn, pg_schema, [*base, add, index])
    assert [m.version for m in applied] == [*range(1, n + 1), n + 1, n + 2]
    with pytest.raises(StateError) as caught:
        migrate_postgres.upgrade(postgres_dsn, pg_schema, [*base, add, index, broken])
    assert f"{n + 3:04d}_broken was rolled back" in caught.value.message
    assert not isinstance(caught.value, BackendUnavailable)
    assert [v for v, _ in versions(postgres_dsn, pg_schema)] == [*range(1, n + 1), n + 1, n + 2]
    assert "half" not in columns(postgres_dsn, pg_schema, "api_keys")  # nothing of it remains
    assert "owner" in columns(postgres_dsn, pg_schema, "api_keys")


def test_concurrent_upgrades_apply_each_migration_once(postgres_dsn: str, pg_schema: str) -> None:
    """Eight upgrades at once; the slow migration gives them every chance to collide."""
    slow = Migration(
        len(shipped("postgres")) + 1,
        "slow_counter",
        "SELECT pg_sleep(0.2); CREATE TABLE {schema}.counter (n int);"
        " INSERT INTO {schema}.counter VALUES (1)",
    )
    todo = [*shipped("postgres"), slow]
    results: list[list[Migration]] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            results.append(migrate_postgres.upgrade(postgres_dsn, pg_schema, todo))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert sorted(len(r) for r in results) == [0] * 7 + [len(todo)]
    with psycopg.connect(postgres_dsn) as conn:
        count = conn.execute(
            sql.SQL("SELECT count(*) FROM {}.counter").format(sql.Identifier(pg_schema))
        ).fetchone()
    assert count is not None
    assert count[0] == 1


def test_an_unreachable_server_is_backend_unavailable_without_the_password(
    postgres_cluster_factory: Callable[[], PostgresCluster],
) -> None:
    cluster = postgres_cluster_factory()
    dsn = cluster.dsn.replace("postgres@", "postgres:hunter2@")
    assert migrate_postgres.upgrade(dsn, "bastion")  # reachable: applied
    cluster.stop()
    started = time.monotonic()
    with pytest.raises(BackendUnavailable) as caught:
        migrate_postgres.upgrade(dsn, "bastion", timeout=1)
    assert time.monotonic() - started < 5
    assert "hunter2" not in str(caught.value)
    assert "postgresql://" not in str(caught.value)


def test_status_reports_a_released_migration_that_changed(
    postgres_dsn: str, pg_schema: str
) -> None:
    base = list(shipped("postgres"))
    extra = Migration(len(base) + 1, "extra", "CREATE TABLE {schema}.extra (x int)")
    migrate_postgres.upgrade(postgres_dsn, pg_schema, [*base, extra])
    edited = Migration(extra.version, "extra", "CREATE TABLE {schema}.extra (x bigint)")
    found = migrate_postgres.status(postgres_dsn, pg_schema, [*base, edited])
    assert found.modified == (extra.version,)
    assert found.pending == ()
    assert migrate_postgres.status(postgres_dsn, pg_schema, [*base, extra]).modified == ()


def test_least_privilege_roles_for_migrations_and_for_gateways(
    postgres_dsn: str, pg_schema: str
) -> None:
    """Migrations need to own the schema, not to create schemas; using it needs data rights."""
    role = f"r_{pg_schema}"
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        admin.execute(
            sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(
                sql.Identifier(pg_schema), sql.Identifier(role)
            )
        )
        allowed = admin.execute(
            "SELECT has_database_privilege(%s, current_database(), 'CREATE')", (role,)
        ).fetchone()
    assert allowed is not None
    assert allowed[0] is False  # a new role may not create schemas
    dsn = postgres_dsn.replace("://postgres@", f"://{role}@")
    user = f"u_{pg_schema}"
    try:
        assert [m.version for m in migrate_postgres.upgrade(dsn, pg_schema)] == ALL
        # A role with data rights only (a gateway's, an admin API's) uses the current schema,
        # even through a store that would migrate: nothing is pending, so no DDL is tried.
        with psycopg.connect(postgres_dsn, autocommit=True) as admin:
            ident, who = sql.Identifier(pg_schema), sql.Identifier(user)
            admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(who))
            admin.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(ident, who))
            admin.execute(
                sql.SQL(
                    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {} TO {}"
                ).format(ident, who)
            )
        user_dsn = postgres_dsn.replace("://postgres@", f"://{user}@")
        for migrate in (False, True):
            store = PostgresKeyStore(user_dsn, pg_schema, migrate=migrate)
            store.insert(record(f"k-{migrate}"))
            store.close()
    finally:
        with psycopg.connect(postgres_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(pg_schema)))
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(user)))
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
