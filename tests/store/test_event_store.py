"""The event store on SQLite and on the real PostgreSQL: insert, the query filters, purge by
age, its table made by migration 2, and databases the release before made adopted as they are."""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql

from bastion.cli.main import cli
from bastion.observability.ecs import StoredEvent
from bastion.store import migrate_postgres
from bastion.store.events import (
    COLUMNS,
    EventQuery,
    EventStore,
    PostgresEventStore,
    SqliteEventStore,
    open_event_store,
)
from bastion.store.migrations import shipped
from bastion.store.schema import SchemaBehind
from tests.store.legacy import POSTGRES_EVENTS, SQLITE_EVENTS

_MARKS = ", ".join(["%s"] * 9)
INSERT_PG = f"INSERT INTO {{}}.security_events ({COLUMNS}) VALUES ({_MARKS})"  # noqa: S608
INSERT_SQLITE = f"INSERT INTO security_events ({COLUMNS}) VALUES ({', '.join('?' * 9)})"  # noqa: S608


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
        opened = PostgresEventStore(dsn, request.getfixturevalue("pg_schema"), migrate=True)
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


def test_opening_again_keeps_the_rows(tmp_path: Path, postgres_dsn: str, pg_schema: str) -> None:
    for _ in range(2):
        sqlite = SqliteEventStore(tmp_path / "keys.db")
        sqlite.insert(EVENTS[:1])
        sqlite.close()
        postgres = PostgresEventStore(postgres_dsn, pg_schema, migrate=True)
        postgres.insert(EVENTS[:1])
        postgres.close()
    assert len(SqliteEventStore(tmp_path / "keys.db").query(EventQuery())) == 2
    assert len(PostgresEventStore(postgres_dsn, pg_schema).query(EventQuery())) == 2
    assert (tmp_path / "keys.db").stat().st_mode & 0o777 == 0o600


def test_a_gateway_store_refuses_a_schema_behind_and_runs_no_ddl(
    postgres_dsn: str, pg_schema: str
) -> None:
    migrate_postgres.upgrade(postgres_dsn, pg_schema, shipped("postgres")[:1])
    with pytest.raises(SchemaBehind, match="run `bastion db upgrade`"):
        PostgresEventStore(postgres_dsn, pg_schema)
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        found = conn.execute("SELECT to_regclass(%s)", (f'"{pg_schema}".security_events',))
        assert found.fetchone() == (None,)  # the gateway's store created nothing


def test_a_postgres_schema_made_by_the_ad_hoc_ddl_upgrades_with_its_rows(
    postgres_dsn: str, pg_schema: str
) -> None:
    """The release before migration 2: keys at version 1 (migrations), the event table made by
    the gateways themselves. ``bastion db upgrade`` records migration 2 over it as it is."""
    migrate_postgres.upgrade(postgres_dsn, pg_schema, shipped("postgres")[:1])
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        for statement in POSTGRES_EVENTS.split(";"):
            if statement.strip():
                conn.execute(sql.SQL(statement).format(schema=sql.Identifier(pg_schema)))
        conn.execute(
            sql.SQL(INSERT_PG).format(sql.Identifier(pg_schema)),
            (*EVENTS[0][:8], EVENTS[0].document.decode()),
        )
    result = CliRunner().invoke(
        cli, ["db", "upgrade", "--config", str(_config(postgres_dsn, pg_schema))]
    )
    assert result.exit_code == 0, result.output
    assert "applied 0002_security_events" in result.output
    store = PostgresEventStore(postgres_dsn, pg_schema)
    try:
        assert store.query(EventQuery()) == EVENTS[:1]
        store.insert(EVENTS[1:])
        assert store.query(EventQuery()) == EVENTS
    finally:
        store.close()
    assert migrate_postgres.status(postgres_dsn, pg_schema).pending == ()


def test_a_sqlite_events_file_of_the_release_before_is_moved_into_the_state_store(
    tmp_path: Path,
) -> None:
    legacy = tmp_path / "events.db"
    db = sqlite3.connect(legacy)
    db.executescript(SQLITE_EVENTS)
    db.executemany(
        INSERT_SQLITE,
        [(*e[:8], e.document.decode()) for e in EVENTS[:3]],
    )
    db.commit()
    db.close()

    store = open_event_store(tmp_path, None, "bastion")
    try:
        assert store.query(EventQuery()) == EVENTS[:3]
        store.insert(EVENTS[3:])
    finally:
        store.close()
    assert not legacy.exists()
    assert (tmp_path / "events.db.adopted").exists()  # kept, for the operator to delete
    again = open_event_store(tmp_path, None, "bastion", create=False)
    try:
        assert again.query(EventQuery()) == EVENTS  # moved once, not twice
    finally:
        again.close()
    tables = sqlite3.connect(tmp_path / "keys.db").execute(
        "SELECT version FROM schema_version ORDER BY version"
    )
    assert [row[0] for row in tables] == [m.version for m in shipped("sqlite")]


def test_a_long_purge_runs_in_batches(tmp_path: Path) -> None:
    store = SqliteEventStore(tmp_path / "keys.db")
    try:
        many = [
            stored(float(n), "auth.invalid_credentials", None, "203.0.113.1") for n in range(12_000)
        ]
        store.insert(many)
        assert store.purge(before=11_000.0) == 11_000
        assert len(store.query(EventQuery())) == 1000
    finally:
        store.close()


def _config(dsn: str, schema: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix="obs2-")) / "bastion.yaml"
    path.write_text(f"postgres: {{dsn: '{dsn}', schema: {schema}}}\n")
    return path
