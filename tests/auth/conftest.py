"""Fixtures for the API-key tests: a fake clock, stores of every kind, a key manager, and a real
gateway (the engine on a loopback port) in front of the engine tests' recording upstream."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bastion.auth.keys.hashing import KeyHasher
from bastion.auth.keys.manager import KeyManager
from bastion.config.loader import build_config
from bastion.store import MemoryKeyStore, SqliteKeyStore
from bastion.store.postgres import PostgresKeyStore
from bastion.store.records import KeyStore
from tests.auth.helpers import PEPPER, FakeClock
from tests.engine.conftest import pytest_asyncio_loop_factories, upstream

__all__ = ["pytest_asyncio_loop_factories", "upstream"]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def hasher() -> KeyHasher:
    return KeyHasher(PEPPER)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KeyStore]:
    """Every :class:`KeyStore` implementation, for the one contract suite."""
    kind = request.param
    made: KeyStore
    if kind == "memory":
        made = MemoryKeyStore()
    elif kind == "sqlite":
        made = SqliteKeyStore(tmp_path / "keys.db")
    else:
        dsn = request.getfixturevalue("postgres_dsn")
        made = PostgresKeyStore(dsn, request.getfixturevalue("pg_schema"))
    yield made
    made.close()


@pytest.fixture
def memory_store() -> MemoryKeyStore:
    return MemoryKeyStore()


@pytest.fixture
def keys(memory_store: MemoryKeyStore, hasher: KeyHasher, clock: FakeClock) -> KeyManager:
    """A key manager over the memory store, on the fake clock."""
    config = build_config({}, "test")
    return KeyManager(config, clock=clock, store=memory_store, hasher=hasher)
