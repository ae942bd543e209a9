"""Records bastion keeps: API keys and (on PostgreSQL) signing keys, in versioned schemas.

Each kind of record has a small contract (:class:`KeyStore`) and its backends: memory for tests,
SQLite under ``state_dir`` for one machine, PostgreSQL when ``postgres.dsn`` is set.
"""

from __future__ import annotations

from pathlib import Path

from bastion.config.models import BastionConfig
from bastion.store.memory import MemoryKeyStore
from bastion.store.records import KeyRecord, KeyStatus, KeyStore
from bastion.store.sqlite import SqliteKeyStore

SQLITE_FILE = "keys.db"

__all__ = [
    "SQLITE_FILE",
    "KeyRecord",
    "KeyStatus",
    "KeyStore",
    "MemoryKeyStore",
    "SqliteKeyStore",
    "key_store_location",
    "open_key_store",
]


def key_store_location(config: BastionConfig) -> Path | None:
    """The SQLite file the config's keys live in, or ``None`` when they live in PostgreSQL."""
    if config.postgres.dsn is not None:
        return None
    return config.state_dir / SQLITE_FILE


def open_key_store(config: BastionConfig, *, create: bool = True) -> KeyStore:
    """The key store ``config`` names: PostgreSQL when ``postgres.dsn`` is set, else SQLite.

    ``create=False`` (a gateway) refuses to create a SQLite file that does not exist yet (the
    CLI creates it with the first key) and leaves a PostgreSQL schema as it is: a gateway only
    checks that it is current (``bastion db upgrade`` makes it so).
    """
    if config.postgres.dsn is not None:
        from bastion.store.postgres import PostgresKeyStore

        return PostgresKeyStore(config.postgres.dsn, config.postgres.db_schema, migrate=create)
    path = config.state_dir / SQLITE_FILE
    return SqliteKeyStore(path, create=create)
