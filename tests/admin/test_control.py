"""The control plane's parts on their own: token checks, sessions, config diffs with secrets
masked, the audit log, the recent-events ring and its top-refusals count, restart-only fields."""

from __future__ import annotations

import stat
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from bastion.admin.history import TrafficHistory
from bastion.admin.sessions import COOKIE, Sessions, cookie_value
from bastion.admin.tokens import Principal, TokenBook, generate, token_hash
from bastion.cli.main import cli
from bastion.config.admin import AdminTokenConfig
from bastion.config.loader import build_config
from bastion.config.models import BastionConfig
from bastion.control.audit import Actor, AuditLog, line_hash, verify
from bastion.control.diff import config_diff
from bastion.control.recent import EventQuery, RecentEvents, SpaceSaving, merged
from bastion.control.reload import restart_only_changes
from bastion.errors import ConfigError
from bastion.observability.events import MemorySink, SecurityEvent
from bastion.observability.traffic import TrafficStats


def test_tokens_verify_by_hash_and_roles_nest() -> None:
    ops, viewer = generate(), generate()
    assert ops.startswith("bsa_")
    assert len(ops) == 47
    book = TokenBook(
        [
            AdminTokenConfig(name="ops", role="operator", token_hash=token_hash(ops)),
            AdminTokenConfig(name="viewer", role="read-only", token_hash=token_hash(viewer)),
        ]
    )
    assert book.verify(ops) == Principal("ops", "operator")
    assert book.verify(viewer) == Principal("viewer", "read-only")
    for wrong in ("", ops[:-1], ops + "x", token_hash(ops), "x" * 500):
        assert book.verify(wrong) is None
    assert Principal("ops", "operator").may("read-only")
    assert Principal("ops", "operator").may("operator")
    assert not Principal("ops", "operator").may("admin")
    assert not Principal("viewer", "read-only").may("operator")
    assert TokenBook([]).empty
    assert book.admits(Principal("ops", "operator"))
    assert not book.admits(Principal("ops", "admin"))  # a token whose role changed
    assert not TokenBook([]).admits(Principal("ops", "operator"))


def test_token_config_errors_name_the_field_and_never_show_a_hash() -> None:
    with pytest.raises(ConfigError) as caught:
        build_config(
            {"admin": {"tokens": [{"name": "Ops!", "role": "root", "token_hash": "sha256:abc"}]}}
        )
    text = str(caught.value)
    assert "admin.tokens[0].name: got 'Ops!'; expected a lower-case name" in text
    assert "admin.tokens[0].role: got 'root'" in text
    assert "admin.tokens[0].token_hash: got '***' (secret, not shown)" in text
    assert "abc" not in text
    twice = {"name": "a", "token_hash": token_hash("x")}
    with pytest.raises(ConfigError, match="used twice"):
        build_config({"admin": {"tokens": [twice, twice]}})


def test_sessions_expire_and_are_looked_up_by_digest() -> None:
    now = [1000.0]
    sessions = Sessions(60.0, clock=lambda: now[0])
    session = sessions.create(Principal("viewer", "read-only"))
    assert len(session) >= 40
    assert sessions.get(session) == Principal("viewer", "read-only")
    assert sessions.get(session[:-1]) is None
    cookie = sessions.cookie(session)
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Max-Age=60" in cookie
    assert cookie_value(f"a=b; {COOKIE}={session}; c=d") == session
    now[0] += 61
    assert sessions.get(session) is None
    other = sessions.create(Principal("viewer", "read-only"))
    sessions.end(other)
    assert sessions.get(other) is None


def _config(**data: object) -> BastionConfig:
    return BastionConfig.model_validate(data)


def test_config_diff_names_paths_and_masks_secrets() -> None:
    old = _config(
        routes=[{"name": "a", "upstream": "http://127.0.0.1:1"}],
        redis={"url": "redis://:hunter2@127.0.0.1:6379/0"},
        admin={"tokens": [{"name": "ops", "token_hash": token_hash("one")}]},
    )
    new = _config(
        routes=[
            {"name": "a", "upstream": "http://127.0.0.1:2"},
            {"name": "b", "upstream": "http://127.0.0.1:3", "path_prefix": "/b"},
        ],
        redis={"url": "redis://:swordfish@127.0.0.1:6379/0"},
        admin={"tokens": [{"name": "ops", "token_hash": token_hash("two")}]},
    )
    changes = {c["path"]: c for c in config_diff(old, new)}
    upstream = changes["routes[a].upstream"]
    assert upstream["change"] == "changed"
    assert str(upstream["old"]).startswith("http://127.0.0.1:1")
    assert str(upstream["new"]).startswith("http://127.0.0.1:2")
    assert changes["routes[b].path_prefix"] == {
        "path": "routes[b].path_prefix",
        "change": "added",
        "new": "/b",
    }
    assert changes["redis.url"] == {
        "path": "redis.url",
        "change": "changed",
        "old": "***",
        "new": "***",
    }
    assert changes["admin.tokens[ops].token_hash"]["new"] == "***"
    text = orjson.dumps(list(changes.values())).decode()
    for secret in ("hunter2", "swordfish", token_hash("two")[7:]):
        assert secret not in text
    assert config_diff(old, old) == []


def test_restart_only_changes_are_named() -> None:
    old = _config(routes=[{"name": "a", "upstream": "http://127.0.0.1:1"}])
    new = _config(
        routes=[{"name": "a", "upstream": "http://127.0.0.1:1"}],
        listen="127.0.0.1:9000",
        timeouts={"idle": 5},
        admin={"tokens": [{"name": "ops", "token_hash": token_hash("t")}]},
    )
    assert restart_only_changes(old, new) == ["listen", "timeouts"]


def test_audit_log_appends_owner_only_lines_and_mirrors_events(tmp_path: Path) -> None:
    sink = MemorySink()
    log = AuditLog(tmp_path / "audit" / "audit.log", sink, clock=lambda: 0.5)
    log.record(Actor("ops", "operator", "10.0.0.1"), "keys.revoke", "success", status=200,
               target="bk_1")  # fmt: skip
    log.record(Actor("anonymous", "none"), "keys.list", "failure", status=401)
    lines = (tmp_path / "audit" / "audit.log").read_bytes().splitlines()
    first = orjson.loads(lines[0])
    assert first == {
        "@timestamp": "1970-01-01T00:00:00.500Z",
        "action": "keys.revoke",
        "outcome": "success",
        "actor": {"name": "ops", "role": "operator", "ip": "10.0.0.1"},
        "status": 200,
        "target": "bk_1",
        "prev": "",
    }
    assert orjson.loads(lines[1])["prev"] == line_hash(lines[0])
    assert stat.S_IMODE((tmp_path / "audit" / "audit.log").stat().st_mode) == 0o600
    assert [e["action"] for e in log.tail(1)] == ["keys.list"]
    assert sink.actions() == ["admin.keys.revoke", "admin.keys.list"]
    assert sink.events[0].user_id == "ops"
    assert sink.events[0].client_ip == "10.0.0.1"


def test_the_audit_chain_survives_restarts_and_shows_tampering(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    for run in range(3):  # a new process (a new AuditLog) continues the chain
        log = AuditLog(path, MemorySink())
        for i in range(3):
            log.record(Actor("ops", "operator"), f"keys.create.{run}.{i}", "success")
    log.record(Actor("ops", "operator"), "config.reload", "success", details={"x": "y" * 200_000})
    log.record(Actor("ops", "operator"), "keys.list", "success")  # after a 200 KB entry
    assert verify(path) == (11, None)
    result = CliRunner().invoke(cli, ["admin", "audit-verify", "--file", str(path)])
    assert result.exit_code == 0
    assert "11 entries, the chain is intact" in result.output

    lines = path.read_bytes().splitlines(keepends=True)
    edited = lines[4].replace(b'"success"', b'"failure"')
    path.write_bytes(b"".join([*lines[:4], edited, *lines[5:]]))
    assert verify(path) == (5, 6)  # the changed line verifies; the next one no longer does
    path.write_bytes(b"".join([*lines[:4], *lines[5:]]))
    assert verify(path) == (4, 5)  # a removed line
    result = CliRunner().invoke(cli, ["admin", "audit-verify", "--file", str(path)])
    assert result.exit_code == 1
    assert "line 5 does not follow line 4" in result.output


def _event(action: str, ip: str, status: int = 401, at: float = 1.0) -> SecurityEvent:
    return SecurityEvent(action, "failure", at, "g", client_ip=ip, status=status, user_id="u")


def test_recent_events_query_filters_newest_first_and_stay_bounded() -> None:
    recent = RecentEvents(capacity=10)
    for i in range(25):
        recent.emit(_event("auth.invalid_key" if i % 2 else "ratelimit.exceeded", "10.0.0.1",
                           at=float(i)))  # fmt: skip
    assert len(recent.events) == 10
    found = recent.query(EventQuery(action="auth.", limit=3))
    assert [e["@timestamp"] for e in found] == [
        "1970-01-01T00:00:23.000Z",
        "1970-01-01T00:00:21.000Z",
        "1970-01-01T00:00:19.000Z",
    ]
    assert recent.query(EventQuery(since=22.0)) != []
    assert all(
        e["event"]["action"] == "ratelimit.exceeded"
        for e in recent.query(EventQuery(action="ratelimit."))
    )
    assert recent.query(EventQuery(ip="10.9.9.9")) == []
    assert recent.top_refusals() == [("10.0.0.1", 25)]


def test_space_saving_finds_the_heavy_source_among_a_flood_in_bounded_memory() -> None:
    top = SpaceSaving(k=8)
    for i in range(5000):
        top.add(f"10.1.{i // 250}.{i % 250}")  # 5000 distinct sources, once each
        if i % 5 == 0:
            top.add("203.0.113.7")  # one source with a fifth of the traffic
    assert len(top.counts) == 8
    source, count = top.top(1)[0]
    assert source == "203.0.113.7"
    assert count >= 1000  # never under-counted


def test_exports_of_several_processes_merge_in_time_order() -> None:
    one, two = RecentEvents(), RecentEvents()
    one.emit(_event("auth.a", "10.0.0.1", at=1.0))
    two.emit(_event("auth.b", "10.0.0.2", at=2.0))
    one.emit(_event("auth.c", "10.0.0.1", at=3.0))
    both = merged([orjson.loads(orjson.dumps(one.export())), two.export()], capacity=10)
    assert [e["event"]["action"] for e in both.query(EventQuery())] == [
        "auth.c",
        "auth.b",
        "auth.a",
    ]
    assert both.top_refusals() == [("10.0.0.1", 2), ("10.0.0.2", 1)]


def test_successes_never_push_refusals_out_of_the_ring() -> None:
    recent = RecentEvents(capacity=100)
    recent.emit(_event("auth.invalid_key", "10.0.0.9", at=1.0))
    for i in range(5000):  # ordinary traffic: one auth.success per request
        recent.emit(SecurityEvent("auth.success", "success", 2.0 + i, "api_key", user_id="acme"))
    refusals = recent.query(EventQuery(outcome="failure"))
    assert [e["event"]["action"] for e in refusals] == ["auth.invalid_key"]
    newest = recent.query(EventQuery(limit=2))
    assert [e["event"]["action"] for e in newest] == ["auth.success", "auth.success"]
    assert len(recent.successes) == 10


def test_traffic_history_gives_rates_and_latency_quantiles_per_second() -> None:
    stats = TrafficStats()
    now = [100.0]
    history = TrafficHistory(stats.snapshot, clock=lambda: now[0])
    history.sample()
    for _ in range(90):
        stats.record("api", "GET", 200, 0.003)  # the 0.005 s bucket
    for _ in range(10):
        stats.record("api", "GET", 429, 0.2)  # the 0.25 s bucket
    now[0] += 2.0
    history.sample()
    (point,) = history.points
    assert point["2xx"] == 45.0
    assert point["4xx"] == 5.0
    assert point["p50_ms"] == 5.0
    assert point["p95_ms"] == 250.0
    now[0] += 1.0
    history.sample()
    assert history.points[-1]["p95_ms"] is None  # nothing answered in that second
    assert history.points[-1]["2xx"] == 0.0
