"""The backup and restore of docs/operations.md, done for real: ``pg_dump`` of the schema,
changes, ``pg_restore`` over it. The restored schema is current for ``bastion db status``, and a
running gateway's key index notices that the store went back in time and holds exactly the
restored keys (not the ones made after the backup)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import psycopg
from psycopg import sql

from bastion.auth.keys.hashing import KeyHasher
from bastion.auth.keys.index import KeyIndex
from bastion.auth.keys.sync import KeySync
from bastion.store import migrate_postgres
from bastion.store.postgres import PostgresKeyStore
from bastion.store.records import KeyRecord, KeyStore
from tests.auth.helpers import PEPPER
from tests.services.postgres_service import server_binaries


def record(key_id: str) -> KeyRecord:
    return KeyRecord(id=key_id, hash="ab" * 32, consumer="acme", created_at=1.0, expires_at=9e9)


def tool(name: str) -> str:
    """``pg_dump`` / ``pg_restore`` of the installed server's version (the cluster fixture's
    directory), else from the PATH."""
    beside = server_binaries() / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    assert found is not None, f"{name} is needed (apt-get install postgresql-client)"
    return found


def test_pg_dump_and_restore_of_the_schema_and_a_running_index_follows(
    tmp_path: Path, postgres_dsn: str, pg_schema: str
) -> None:
    store = PostgresKeyStore(postgres_dsn, pg_schema)
    store.insert(record("before1"))
    dump = tmp_path / "bastion.dump"
    subprocess.run(
        [tool("pg_dump"), "--format=custom", f"--schema={pg_schema}", f"--file={dump}",
         postgres_dsn],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    store.insert(record("after1"))
    store.insert(record("after2"))

    gateway_store: KeyStore = PostgresKeyStore(postgres_dsn, pg_schema, migrate=False)
    index = KeyIndex()
    sync = KeySync(index, lambda: (gateway_store, KeyHasher(PEPPER)), interval=30.0)
    assert sync.refresh()
    assert sorted(index.entries) == ["after1", "after2", "before1"]
    assert index.revision == 3

    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(pg_schema)))
    subprocess.run(
        [tool("pg_restore"), f"--dbname={postgres_dsn}", "--no-owner", str(dump)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip

    status = migrate_postgres.status(postgres_dsn, pg_schema)
    assert status.pending == ()
    assert status.current == status.latest
    assert sync.refresh()  # the store's revision went back from 3 to 1
    assert sorted(index.entries) == ["before1"]
    assert index.revision == 1
    store.insert(record("new1"))  # revision 2 again: a new key, not "after1"
    assert sync.refresh()
    assert sorted(index.entries) == ["before1", "new1"]
    sync.close()
    store.close()
