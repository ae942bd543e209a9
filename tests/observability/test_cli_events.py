"""``bastion events``: list, export (JSON lines, CSV) and purge what gateways stored, and the
store recorder that fills the store from the event writer."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import orjson
from click.testing import CliRunner

from bastion.cli.main import cli
from bastion.observability.ecs import security_line
from bastion.observability.events import SecurityEvent
from bastion.observability.redact import Redactor
from bastion.observability.retention import StoreRecorder
from bastion.observability.writer import EventWriter
from bastion.store.events import EventQuery, PostgresEventStore, SqliteEventStore
from tests.observability.helpers import check_line


def fill(state: Path, now: float) -> None:
    """Security events recorded through the real writer and recorder into ``state``."""
    recorder = StoreRecorder(
        lambda: SqliteEventStore(state / "keys.db"), max_age=86_400, purge_interval=3600
    )
    writer = EventWriter([], recorder=recorder, flush_interval=0.01)
    for age, action, user, ip in (
        (7200, "auth.invalid_credentials", None, "203.0.113.1"),
        (600, "auth.success", "alice", "203.0.113.1"),
        (60, "ratelimit.exceeded", "alice", "198.51.100.7"),
    ):
        writer.emit(
            SecurityEvent(
                action,
                "success" if action == "auth.success" else "failure",
                now - age,
                guard="g",
                client_ip=ip,
                method="GET",
                path="/orders",
                user_id=user,
                status=None if action == "auth.success" else 429,
                reason="a reason",
            )
        )
    writer.close()


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, ["events", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_list_filters_by_time_consumer_ip_and_kind(tmp_path: Path) -> None:
    fill(tmp_path, time.time())
    state = ["--state-dir", str(tmp_path)]
    table = run("list", *state)
    assert "auth.invalid_credentials" in table
    assert "ratelimit.exceeded" in table
    docs = [check_line(line) for line in run("list", "--json", *state).splitlines()]
    assert [d["event"]["action"] for d in docs] == [
        "auth.invalid_credentials",
        "auth.success",
        "ratelimit.exceeded",
    ]
    recent = run("list", "--json", "--since", "1h", *state).splitlines()
    assert len(recent) == 2
    by_consumer = run("list", "--json", "--consumer", "alice", "--kind", "auth", *state)
    assert [orjson.loads(x)["event"]["action"] for x in by_consumer.splitlines()] == [
        "auth.success"
    ]
    by_ip = run("list", "--json", "--ip", "198.51.100.7", *state).splitlines()
    assert [orjson.loads(x)["source"]["ip"] for x in by_ip] == ["198.51.100.7"]
    assert run("list", "--kind", "alert", *state).strip() == "no events match"


def test_export_as_csv_and_json_lines(tmp_path: Path) -> None:
    fill(tmp_path, time.time())
    state = ["--state-dir", str(tmp_path)]
    rows = list(csv.DictReader(io.StringIO(run("export", "--format", "csv", *state))))
    assert [r["action"] for r in rows] == [
        "auth.invalid_credentials",
        "auth.success",
        "ratelimit.exceeded",
    ]
    assert rows[2]["status"] == "429"
    assert rows[1]["status"] == ""
    assert rows[0]["path"] == "/orders"
    assert rows[0]["reason"] == "a reason"
    assert rows[1]["user_id"] == "alice"
    out = tmp_path / "export.jsonl"
    run("export", "--outcome", "failure", "-o", str(out), *state)
    docs = [check_line(line) for line in out.read_bytes().splitlines()]
    assert [d["event"]["outcome"] for d in docs] == ["failure", "failure"]


def test_purge_and_bad_input(tmp_path: Path) -> None:
    fill(tmp_path, time.time())
    assert run("purge", "--older-than", "1h", "--state-dir", str(tmp_path)).startswith("1 events")
    assert len(SqliteEventStore(tmp_path / "keys.db").query(EventQuery())) == 2
    bad = CliRunner().invoke(cli, ["events", "list", "--since", "yesterday", "--state-dir", "x"])
    assert bad.exit_code == 2
    assert "--since: got 'yesterday'" in bad.output
    empty = CliRunner().invoke(cli, ["events", "list", "--state-dir", str(tmp_path / "none")])
    assert empty.exit_code == 1
    assert "no events stored yet" in empty.output


def test_the_recorder_purges_past_the_retention_age(tmp_path: Path) -> None:
    now = [1_764_000_000.0]
    path = tmp_path / "keys.db"
    recorder = StoreRecorder(
        lambda: SqliteEventStore(path),
        max_age=3600,
        purge_interval=60,
        flush_interval=0.01,
        clock=lambda: now[0],
    )
    writer = EventWriter([], recorder=recorder, flush_interval=0.01)
    writer.emit(SecurityEvent("auth.success", "success", now[0] - 7200))
    writer.emit(SecurityEvent("auth.success", "success", now[0] - 60))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if len(SqliteEventStore(path).query(EventQuery())) == 1 if path.exists() else False:
            break
        time.sleep(0.02)
    writer.close()
    assert [e.timestamp for e in SqliteEventStore(path).query(EventQuery())] == [now[0] - 60]
    assert recorder.purged == 1


def test_list_and_export_from_postgresql(tmp_path: Path, postgres_dsn: str, pg_schema: str) -> None:
    store = PostgresEventStore(postgres_dsn, pg_schema, migrate=True)
    now = time.time()
    line, row = security_line(
        SecurityEvent("auth.invalid_token", "failure", now - 30, "jwt", "r9", "192.0.2.7", "GET",
                      "/v1/me", 401, "signature does not verify", "bob"),
        Redactor(),
    )  # fmt: skip
    store.insert([row])
    store.close()
    config = tmp_path / "bastion.yaml"
    config.write_text(f"postgres: {{dsn: '{postgres_dsn}', schema: {pg_schema}}}\n")
    docs = [
        check_line(x)
        for x in run("list", "--json", "--config", str(config), "--since", "1m").splitlines()
    ]
    assert [(d["event"]["action"], d["user"]["id"]) for d in docs] == [
        ("auth.invalid_token", "bob")
    ]
    rows = list(
        csv.DictReader(io.StringIO(run("export", "--format", "csv", "--config", str(config))))
    )
    assert [(r["action"], r["client_ip"], r["status"]) for r in rows] == [
        ("auth.invalid_token", "192.0.2.7", "401")
    ]
    assert line.rstrip(b"\n") in run("export", "--config", str(config)).encode()
