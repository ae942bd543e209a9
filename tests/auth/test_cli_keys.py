"""``bastion keys`` through the real CLI, on a SQLite store in a temporary state directory,
with the clock fixed (``CliClock``) so that expiry and grace are exact."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result

from bastion.auth.apikey import ApiKeyGuard
from bastion.auth.keys.format import KEY_PATTERN
from bastion.cli.keys import CliClock
from bastion.cli.main import cli
from bastion.config.loader import build_config
from bastion.observability.events import MemorySink
from bastion.pipeline.decisions import Allow, Deny
from bastion.pipeline.identity import IDENTITY
from bastion.pipeline.request import ClientAddress, Headers, Request
from tests.auth.helpers import DAY, FakeClock


class Keys:
    """Runs ``bastion keys ...`` on one state directory at the fake clock's time (which starts
    at 2027-01-15T08:00:00Z)."""

    def __init__(self, state: Path, clock: FakeClock) -> None:
        self.state = state
        self.clock = clock

    def run(self, *args: str) -> Result:
        return CliRunner().invoke(
            cli, ["keys", *args, "--state-dir", str(self.state)], obj=CliClock(self.clock)
        )

    def json(self, *args: str) -> Any:
        result = self.run(*args, "--json")
        assert result.exit_code == 0, result.output
        return orjson.loads(result.output)

    def guard(self) -> ApiKeyGuard:
        """A gateway's key guard over the same store, on the same clock (synced by hand)."""
        config = build_config({"state_dir": str(self.state)}, "test")
        return ApiKeyGuard.from_config(config, MemorySink(), clock=self.clock, start=False)


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return Keys(tmp_path / "state", FakeClock())


def request_with(key: str) -> Request:
    return Request(
        method="GET",
        path="/",
        query="",
        headers=Headers([(b"x-api-key", key.encode())]),
        client=ClientAddress("127.0.0.1", 1),
    )


def verdict(guard: ApiKeyGuard, key: str) -> str:
    guard.sync.refresh()
    request = request_with(key)
    decision = guard.check(request)
    if isinstance(decision, Deny):
        return decision.code
    assert isinstance(decision, Allow)
    assert IDENTITY in request.state
    return "ok"


def test_create_prints_the_secret_once_and_stores_only_its_hash(keys: Keys) -> None:
    result = keys.run("create", "--consumer", "acme", "--scope", "orders:read", "--tier", "gold")
    assert result.exit_code == 0, result.output
    found = KEY_PATTERN.findall(result.output)
    assert len(found) == 1
    secret = found[0]
    assert "shown only now" in result.output
    listed = keys.run("list")
    shown = keys.run("show", secret[4:16])
    assert secret not in listed.output + shown.output
    assert secret[4:16] in listed.output
    assert "acme" in listed.output
    for file in keys.state.iterdir():
        assert secret.encode() not in file.read_bytes(), file.name
    assert stat.S_IMODE((keys.state / "keys.db").stat().st_mode) == 0o600
    assert stat.S_IMODE((keys.state / "api-key-pepper").stat().st_mode) == 0o600
    assert stat.S_IMODE(keys.state.stat().st_mode) == 0o700
    assert verdict(keys.guard(), secret) == "ok"


def test_create_json_for_scripts(keys: Keys) -> None:
    doc = keys.json("create", "--consumer", "ci-bot", "--expires", "7d", "--name", "deploys")
    assert KEY_PATTERN.fullmatch(doc["secret"])
    assert doc["consumer"] == "ci-bot"
    assert doc["name"] == "deploys"
    assert doc["status"] == "expiring"  # 7 days is inside the 14-day warning window
    assert doc["created_at"] == "2027-01-15T08:00:00Z"
    assert doc["expires_at"] == "2027-01-22T08:00:00Z"
    listed = keys.json("list")
    assert [d["id"] for d in listed] == [doc["id"]]
    assert "secret" not in listed[0]
    assert keys.json("show", doc["id"])["id"] == doc["id"]


def test_a_key_expires_after_its_default_of_90_days(keys: Keys) -> None:
    doc = keys.json("create", "--consumer", "acme")
    guard = keys.guard()
    keys.clock.advance(90 * DAY - 1)
    assert verdict(guard, doc["secret"]) == "ok"
    keys.clock.advance(1)
    assert verdict(guard, doc["secret"]) == "auth.expired_credentials"
    assert keys.json("show", doc["id"])["status"] == "expired"


def test_rotate_with_grace_keeps_the_old_key_working_until_the_grace_ends(keys: Keys) -> None:
    old = keys.json("create", "--consumer", "acme", "--scope", "a", "--tier", "gold")
    guard = keys.guard()
    keys.clock.advance(3600)
    rotation = keys.json("rotate", old["id"], "--grace", "24h")
    new = rotation["new"]
    assert new["consumer"] == "acme"
    assert new["scopes"] == ["a"]
    assert new["tier"] == "gold"
    assert new["secret"] != old["secret"]
    assert rotation["old"]["replaced_by"] == new["id"]
    assert rotation["old"]["status"] == "grace"
    assert rotation["old"]["expires_at"] == "2027-01-16T09:00:00Z"
    keys.clock.advance(24 * 3600 - 1)
    assert verdict(guard, old["secret"]) == "ok"
    assert verdict(guard, new["secret"]) == "ok"
    keys.clock.advance(1)
    assert verdict(guard, old["secret"]) == "auth.expired_credentials"
    assert verdict(guard, new["secret"]) == "ok"
    again = keys.run("rotate", old["id"])
    assert again.exit_code == 1
    assert "already rotated" in again.output


def test_rotate_text_output_and_zero_grace(keys: Keys) -> None:
    old = keys.json("create", "--consumer", "acme")
    result = keys.run("rotate", old["id"], "--grace", "0s")
    assert result.exit_code == 0, result.output
    assert len(KEY_PATTERN.findall(result.output)) == 1
    assert f"The old key {old['id']} works until 2027-01-15T08:00:00Z" in result.output
    assert verdict(keys.guard(), old["secret"]) == "auth.expired_credentials"


def test_revoke_refuses_the_key_at_once(keys: Keys) -> None:
    doc = keys.json("create", "--consumer", "acme")
    guard = keys.guard()
    assert verdict(guard, doc["secret"]) == "ok"
    result = keys.run("revoke", doc["id"])
    assert result.exit_code == 0, result.output
    assert f"Revoked API key {doc['id']}" in result.output
    assert verdict(guard, doc["secret"]) == "auth.invalid_credentials"
    assert keys.json("show", doc["id"])["status"] == "revoked"
    assert keys.run("rotate", doc["id"]).exit_code == 1


def test_list_filters_by_consumer_and_says_when_empty(keys: Keys) -> None:
    assert keys.run("list").output.strip() == "no API keys"
    keys.json("create", "--consumer", "a")
    keys.json("create", "--consumer", "b")
    assert [d["consumer"] for d in keys.json("list", "--consumer", "b")] == ["b"]
    table = keys.run("list").output.splitlines()
    assert table[0].split()[:3] == ["ID", "CONSUMER", "NAME"]
    assert len(table) == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "--consumer", "bad consumer"], "--consumer: got 'bad consumer'"),
        (["create", "--consumer", "a", "--scope", "has space"], "--scope: got 'has space'"),
        (["create", "--consumer", "a", "--tier", "Gold!"], "--tier: got 'Gold!'"),
        (["create", "--consumer", "a", "--expires", "soon"], "--expires: got 'soon'"),
        (["create", "--consumer", "a", "--expires", "400d"], "at most auth.api_keys.max_expiry"),
        (["create", "--consumer", "a", "--expires", "0s"], "expected a positive duration"),
        (["create"], "Missing option '--consumer'"),
    ],
)
def test_usage_errors_exit_2_naming_the_input(keys: Keys, args: list[str], message: str) -> None:
    result = keys.run(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output


@pytest.mark.parametrize("command", ["show", "rotate", "revoke"])
def test_an_unknown_key_exits_1(keys: Keys, command: str) -> None:
    result = keys.run(command, "nonexistent1")
    assert result.exit_code == 1
    assert "no API key has the id 'nonexistent1'" in result.output


def test_a_config_file_selects_the_store(tmp_path: Path) -> None:
    state = tmp_path / "elsewhere"
    config = tmp_path / "bastion.yaml"
    config.write_text(f"state_dir: {state}\nauth:\n  api_keys:\n    default_expiry: 30d\n")
    runner = CliRunner()
    result = runner.invoke(
        cli, ["keys", "create", "--consumer", "a", "--config", str(config), "--json"],
        obj=CliClock(FakeClock()),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.output)["expires_at"] == "2027-02-14T08:00:00Z"
    assert (state / "keys.db").exists()
    bad = tmp_path / "bad.yaml"
    bad.write_text("auth:\n  api_keys:\n    header: authorization\n")
    result = runner.invoke(cli, ["keys", "list", "--config", str(bad)])
    assert result.exit_code == 2
    assert "auth.api_keys.header: got 'authorization'" in result.output


def test_a_pepper_that_changed_is_refused_with_a_reason(keys: Keys) -> None:
    keys.json("create", "--consumer", "a")
    pepper = keys.state / "api-key-pepper"
    pepper.write_bytes(b"another-pepper-" + b"x" * 40)
    result = keys.run("list")
    assert result.exit_code == 1
    assert "pepper differs" in result.output


def test_keys_help_lists_the_commands() -> None:
    result = CliRunner().invoke(cli, ["keys", "--help"])
    assert result.exit_code == 0
    for command in ("create", "list", "show", "rotate", "revoke"):
        assert command in result.output
