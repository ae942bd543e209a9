"""The :class:`KeyStore` contract, one suite for memory, SQLite and PostgreSQL; then what only
the real backends can show: the secret is not in the database, files are private, schemas are
created idempotently, and driver failures never leak a DSN."""

from __future__ import annotations

import stat
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from bastion.auth.keys.format import generate
from bastion.auth.keys.hashing import KeyHasher
from bastion.errors import BackendUnavailable, StateError
from bastion.store import SqliteKeyStore
from bastion.store.postgres import PostgresKeyStore
from bastion.store.records import KeyRecord, KeyStore
from tests.auth.helpers import DAY, PEPPER, START
from tests.ports import free_port


def record(consumer: str = "acme", **changes: object) -> tuple[KeyRecord, str]:
    key = generate()
    made = KeyRecord(
        id=key.id,
        hash=KeyHasher(PEPPER).hexdigest(key.secret),
        consumer=consumer,
        created_at=START,
        expires_at=START + 90 * DAY,
        name="ci",
        scopes=frozenset({"orders:read", "orders:write"}),
        tier="gold",
    )
    return replace(made, **changes), key.secret  # type: ignore[arg-type]


def test_insert_then_get_returns_the_same_record(store: KeyStore) -> None:
    made, _ = record()
    stored = store.insert(made)
    assert stored.revision > 0
    assert store.get(made.id) == stored
    assert replace(stored, revision=0) == made
    assert store.get("nonexistent1") is None


def test_a_duplicate_id_is_refused(store: KeyStore) -> None:
    made, _ = record()
    store.insert(made)
    with pytest.raises(StateError, match="already exists"):
        store.insert(made)


def test_records_lists_oldest_first_and_filters_by_consumer(store: KeyStore) -> None:
    a, _ = record("a", created_at=START + 2)
    b, _ = record("b", created_at=START + 1)
    c, _ = record("a", created_at=START + 3)
    for made in (a, b, c):
        store.insert(made)
    assert [r.id for r in store.records()] == [b.id, a.id, c.id]
    assert [r.id for r in store.records("a")] == [a.id, c.id]
    assert store.records("nobody") == []


def test_every_change_moves_the_revision_and_changes_returns_exactly_those(
    store: KeyStore,
) -> None:
    assert store.changes(0) == (0, [])
    a, _ = record()
    b, _ = record()
    store.insert(a)
    seen = store.revision()
    store.insert(b)
    revision, changed = store.changes(seen)
    assert revision == store.revision() > seen
    assert [r.id for r in changed] == [b.id]
    store.revoke(a.id, START + 5)
    revision2, changed = store.changes(revision)
    assert revision2 > revision
    assert [(r.id, r.revoked_at) for r in changed] == [(a.id, START + 5)]
    assert store.changes(revision2) == (revision2, [])


def test_revoke_keeps_the_first_revocation_and_ignores_unknown_ids(store: KeyStore) -> None:
    made, _ = record()
    store.insert(made)
    first = store.revoke(made.id, START + 10)
    assert first is not None
    assert first.revoked_at == START + 10
    revision = store.revision()
    again = store.revoke(made.id, START + 20)
    assert again is not None
    assert again.revoked_at == START + 10
    assert store.revision() == revision  # nothing changed, nothing to sync
    assert store.revoke("nonexistent1", START) is None


def test_rotate_inserts_the_new_key_and_shortens_the_old_one_atomically(store: KeyStore) -> None:
    old, _ = record()
    store.insert(old)
    new, _ = record(created_at=START + 100, expires_at=START + 100 + 90 * DAY)
    updated = store.rotate(old.id, new, START + 100 + DAY)
    assert updated is not None
    assert updated.expires_at == START + 100 + DAY
    assert updated.replaced_by == new.id
    assert store.get(new.id) is not None
    _, changed = store.changes(0)
    assert {r.id for r in changed} == {old.id, new.id}


def test_rotate_never_extends_a_key(store: KeyStore) -> None:
    old, _ = record(expires_at=START + 3600)
    store.insert(old)
    new, _ = record()
    updated = store.rotate(old.id, new, START + 30 * DAY)
    assert updated is not None
    assert updated.expires_at == START + 3600


def test_rotate_of_an_unknown_key_inserts_nothing(store: KeyStore) -> None:
    new, _ = record()
    assert store.rotate("nonexistent1", new, START) is None
    assert store.get(new.id) is None


def test_touch_records_last_use_without_moving_the_revision(store: KeyStore) -> None:
    made, _ = record()
    store.insert(made)
    revision = store.revision()
    store.touch({made.id: START + 50, "nonexistent1": START})
    store.touch({made.id: START + 40})  # an older time never wins
    found = store.get(made.id)
    assert found is not None
    assert found.last_used_at == START + 50
    assert store.revision() == revision
    store.touch({})


def test_pepper_check_remembers_the_first_fingerprint(store: KeyStore) -> None:
    assert store.pepper_check("aaaa")
    assert store.pepper_check("aaaa")
    assert not store.pepper_check("bbbb")


# -- what only real backends can show


def test_sqlite_never_holds_the_secret_and_is_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    store = SqliteKeyStore(path)
    made, secret = record()
    store.insert(made)
    store.touch({made.id: START})
    for file in tmp_path.iterdir():  # keys.db, keys.db-wal, keys.db-shm
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file.name
        data = file.read_bytes()
        assert secret.encode() not in data
        assert secret[17:49].encode() not in data  # not even the random part
    store.close()
    assert made.hash.encode() in path.read_bytes() or made.id.encode() in path.read_bytes()


def test_sqlite_store_that_does_not_exist_is_not_created_by_a_reader(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="does not exist"):
        SqliteKeyStore(tmp_path / "keys.db", create=False)
    assert not (tmp_path / "keys.db").exists()


def test_postgres_table_never_holds_the_secret(postgres_dsn: str, pg_schema: str) -> None:
    store = PostgresKeyStore(postgres_dsn, pg_schema)
    made, secret = record()
    store.insert(made)
    store.close()
    with psycopg.connect(postgres_dsn) as conn:
        rows = conn.execute(
            sql.SQL("SELECT t::text FROM {}.api_keys t").format(sql.Identifier(pg_schema))
        ).fetchall()
    dump = "\n".join(row[0] for row in rows)
    assert made.id in dump
    assert made.hash in dump
    assert secret not in dump
    assert secret[17:49] not in dump


def test_postgres_schema_creation_is_idempotent(postgres_dsn: str, pg_schema: str) -> None:
    first = PostgresKeyStore(postgres_dsn, pg_schema)
    made, _ = record()
    first.insert(made)
    second = PostgresKeyStore(postgres_dsn, pg_schema)
    assert second.get(made.id) is not None
    assert second.revision() == first.revision()
    first.close()
    second.close()


def test_postgres_unreachable_is_backend_unavailable_without_the_dsn() -> None:
    dsn = f"postgresql://bastion:hunter2-secret@127.0.0.1:{free_port()}/keys"
    with pytest.raises(BackendUnavailable) as caught:
        PostgresKeyStore(dsn, "bastion", connect_timeout=1)
    assert "hunter2" not in str(caught.value)
    assert "127.0.0.1" not in str(caught.value)


def test_postgres_store_recovers_after_its_server_restarts(
    postgres_cluster_factory: object,
) -> None:
    cluster = postgres_cluster_factory()  # type: ignore[operator]
    store = PostgresKeyStore(cluster.dsn, "bastion")
    made, _ = record()
    store.insert(made)
    cluster.stop()
    with pytest.raises(BackendUnavailable):
        store.revision()
    cluster.start()
    assert store.get(made.id) is not None
    store.close()
