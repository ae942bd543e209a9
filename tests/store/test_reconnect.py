"""The PostgreSQL stores after a server restart: the first read on the dropped connection is
retried once on a new one, so a gateway's next sync succeeds instead of waiting an interval;
a write is not retried (it may have committed) but the one after it succeeds."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bastion.errors import BackendUnavailable
from bastion.store.postgres import PostgresKeyStore
from bastion.store.records import KeyRecord
from bastion.store.signing_postgres import KeySealer, PostgresSigningKeyStore
from tests.services.postgres_service import PostgresCluster

PEPPER = b"reconnect-test-pepper-" + b"r" * 32


def record(key_id: str) -> KeyRecord:
    return KeyRecord(id=key_id, hash="ab" * 32, consumer="acme", created_at=1.0, expires_at=9e9)


async def test_reads_survive_a_server_restart_writes_fail_once_then_work(
    postgres_cluster_factory: Callable[[], PostgresCluster],
) -> None:
    server = postgres_cluster_factory()
    keys = PostgresKeyStore(server.dsn, "bastion")
    signing = PostgresSigningKeyStore(server.dsn, KeySealer(PEPPER), "bastion")
    try:
        keys.insert(record("k1"))
        assert await signing.load() == []
        server.stop()
        server.start()  # same port; every open connection is gone

        revision, changed = keys.changes(0)  # the stale connection is replaced at once
        assert (revision, [r.id for r in changed]) == (1, ["k1"])
        assert await signing.version() == 0

        server.stop()
        server.start()
        with pytest.raises(BackendUnavailable):
            keys.insert(record("k2"))  # a write on a dropped connection: not retried
        assert keys.insert(record("k2")).revision == 2

        server.stop()
        with pytest.raises(BackendUnavailable):
            keys.changes(0)  # down: refused at once, not hung
        server.start()
        assert keys.revision() == 2
    finally:
        keys.close()
        await signing.close()
