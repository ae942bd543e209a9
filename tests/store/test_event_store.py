"""The event store on SQLite and on the real PostgreSQL: insert, the query filters, purge by
age, and idempotent table creation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bastion.observability.ecs import StoredEvent
from bastion.store.events import (
    EventQuery,
    EventStore,
    PostgresEventStore,
    SqliteEventStore,
)


def stored(
    ts: float, action: str, user: str | None, ip: str, outcome: str = "failure"
) -> StoredEvent:
    doc = f'{{"event":{{"action":"{action}"}},"n":{ts}}}'.encode()
    return StoredEvent(ts, "bastion.security", action, outcome, user, ip, f"r{ts}", 401, doc)


EVENTS = [
    stored(100.0, "auth.invalid_credentials", None, "203.0.113.1"),
    stored(200.0, "auth.success", "alice", "203.0.113.1", "success"),
    stored(300.0, "ratelimit.exceeded", "alice", "198.51.100.7"),
    stored(400.0, "authz.denied", "bob", "198.51.100.7"),
    stored(500.0, "alert.credential_stuffing", None, "203.0.113.1", "unknown"),
]


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    if request.param == "sqlite":
        opened: EventStore = SqliteEventStore(tmp_path / "events.db")
    else:
        dsn = request.getfixturevalue("postgres_dsn")
        opened = PostgresEventStore(dsn, request.getfixturevalue("pg_schema"))
    opened.insert(EVENTS)
    yield opened
    opened.close()


def times(events: list[StoredEvent]) -> list[float]:
    return [e.timestamp for e in events]


def test_everything_comes_back_in_time_order_as_stored(store: EventStore) -> None:
    assert store.query(EventQuery()) == EVENTS


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (EventQuery(since=200, until=400), [200.0, 300.0]),
        (EventQuery(user_id="alice"), [200.0, 300.0]),
        (EventQuery(client_ip="198.51.100.7"), [300.0, 400.0]),
        (EventQuery(kind="auth"), [100.0, 200.0]),  # not authz.denied
        (EventQuery(kind="auth.success"), [200.0]),
        (EventQuery(kind="alert"), [500.0]),
        (EventQuery(outcome="failure", client_ip="203.0.113.1"), [100.0]),
        (EventQuery(limit=2), [100.0, 200.0]),
    ],
)
def test_filters(store: EventStore, query: EventQuery, expected: list[float]) -> None:
    assert times(store.query(query)) == expected


def test_purge_deletes_only_older_events(store: EventStore) -> None:
    assert store.purge(before=300.0) == 2
    assert times(store.query(EventQuery())) == [300.0, 400.0, 500.0]
    assert store.purge(before=300.0) == 0


def test_table_creation_is_idempotent(tmp_path: Path, postgres_dsn: str, pg_schema: str) -> None:
    for _ in range(2):
        sqlite = SqliteEventStore(tmp_path / "events.db")
        sqlite.insert(EVENTS[:1])
        sqlite.close()
        postgres = PostgresEventStore(postgres_dsn, pg_schema)
        postgres.insert(EVENTS[:1])
        postgres.close()
    assert len(SqliteEventStore(tmp_path / "events.db").query(EventQuery())) == 2
    assert len(PostgresEventStore(postgres_dsn, pg_schema).query(EventQuery())) == 2
    assert (tmp_path / "events.db").stat().st_mode & 0o777 == 0o600
