"""``bastion jwks rotate|show`` and ``bastion token`` through the real CLI: file and PostgreSQL
stores, a gateway that follows a rotation, the key never taken from the command line."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from click.testing import CliRunner, Result

from bastion.auth.jwt.keystore import FileSigningKeyStore
from bastion.auth.keys.hashing import KeyHasher
from bastion.auth.keys.manager import IssuedKey, KeyManager
from bastion.cli.keys import CliClock
from bastion.cli.main import cli
from bastion.store import MemoryKeyStore
from tests.auth.helpers import AuthGateway, FakeClock
from tests.auth.tokens_helpers import AUDIENCE, ISSUER, claims_of, token_config, token_gateway
from tests.engine.upstream_app import Upstream

SIGNING = {"issuer": ISSUER, "audiences": [AUDIENCE]}


def write_config(path: Path, state: Path, **sections: Any) -> Path:
    doc: dict[str, Any] = {"state_dir": str(state), "auth": {"tokens": {"signing": SIGNING}}}
    doc.update(sections)
    path.write_text(yaml.safe_dump(doc))
    return path


def jwks(config: Path, *args: str, clock: FakeClock | None = None) -> Result:
    return CliRunner().invoke(
        cli, ["jwks", *args, "--config", str(config)], obj=CliClock(clock or FakeClock())
    )


def test_rotate_then_show_on_the_file_store(tmp_path: Path) -> None:
    clock = FakeClock()
    config = write_config(tmp_path / "bastion.yaml", tmp_path / "state")
    first = jwks(config, "rotate", "--json", clock=clock)
    assert first.exit_code == 0, first.output
    kid1 = orjson.loads(first.output)["kid"]
    clock.advance(60)
    second = jwks(config, "rotate", clock=clock)
    assert second.exit_code == 0, second.output
    assert "signs from now on" in second.output
    assert f"Still published while their tokens can be valid: {kid1}" in second.output
    shown = jwks(config, "show", "--json", clock=clock)
    assert shown.exit_code == 0, shown.output
    doc = orjson.loads(shown.output)
    states = {row["kid"]: row["state"] for row in doc["keys"]}
    assert states[kid1] == "retired"
    assert sorted(states.values()) == ["current", "retired"]
    assert [k["kid"] for k in doc["jwks"]["keys"]][1] == kid1
    assert "PRIVATE" not in shown.output
    assert "d" not in doc["jwks"]["keys"][0]  # public members only
    text = jwks(config, "show", clock=clock)
    assert "KID" in text.output
    assert "Published at /.well-known/jwks.json" in text.output
    files = list((tmp_path / "state" / "signing-keys").glob("*.json"))
    assert len(files) == 2


def test_rotate_with_revoke_previous_deletes_older_keys(tmp_path: Path) -> None:
    clock = FakeClock()
    config = write_config(tmp_path / "bastion.yaml", tmp_path / "state")
    assert jwks(config, "rotate", clock=clock).exit_code == 0
    clock.advance(60)
    result = jwks(config, "rotate", "--revoke-previous", "--json", clock=clock)
    assert result.exit_code == 0, result.output
    doc = orjson.loads(result.output)
    assert [row["kid"] for row in doc["keys"]] == [doc["kid"]]


def test_rotate_on_postgres_seals_with_the_pepper(
    tmp_path: Path, postgres_dsn: str, pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BASTION_API_KEY_PEPPER", "cli-test-pepper-" + "p" * 32)
    config = write_config(
        tmp_path / "bastion.yaml",
        tmp_path / "state",
        postgres={"dsn": postgres_dsn, "schema": pg_schema},
    )
    result = jwks(config, "rotate", "--json")
    assert result.exit_code == 0, result.output
    shown = orjson.loads(jwks(config, "show", "--json").output)
    assert [row["kid"] for row in shown["keys"]] == [orjson.loads(result.output)["kid"]]
    assert not (tmp_path / "state" / "signing-keys").exists()
    monkeypatch.setenv("BASTION_API_KEY_PEPPER", "another-pepper-" + "x" * 32)
    refused = jwks(config, "show")
    assert refused.exit_code == 1
    assert "sealed under another pepper" in refused.output


def test_jwks_without_signing_settings_is_a_usage_error(tmp_path: Path) -> None:
    config = tmp_path / "bastion.yaml"
    config.write_text(yaml.safe_dump({"state_dir": str(tmp_path / "state")}))
    result = jwks(config, "show")
    assert result.exit_code == 2
    assert "auth.tokens.signing is not set" in result.output


async def test_a_running_gateway_follows_a_cli_rotation_within_a_second(
    upstream: Upstream,
    memory_store: MemoryKeyStore,
    hasher: KeyHasher,
    clock: FakeClock,
    tmp_path: Path,
    keys: KeyManager,
) -> None:
    state = tmp_path / "state"
    config = token_config(upstream, state)
    gw = await token_gateway(
        config, memory_store, hasher, clock, FileSigningKeyStore(state / "signing-keys")
    )
    try:
        issued = keys.create("billing")
        gw.refresh()
        before = claims_of(await _token(gw, issued))[0]["kid"]
        clock.advance(60)
        path = write_config(tmp_path / "bastion.yaml", state)
        result = await asyncio.to_thread(jwks, path, "rotate", "--json", clock=clock)
        assert result.exit_code == 0, result.output
        kid = orjson.loads(result.output)["kid"]
        assert kid != before
        loop = asyncio.get_running_loop()
        start = loop.time()
        while claims_of(await _token(gw, issued))[0]["kid"] != kid:
            assert loop.time() - start < 1.0, "the gateway did not follow the rotation in 1 s"
            await asyncio.sleep(0.02)
    finally:
        await gw.close()


async def _token(gw: AuthGateway, issued: IssuedKey) -> str:
    from tests.auth.tokens_helpers import token_for

    return await token_for(gw, issued.record.id, issued.secret)


# -- bastion token


@pytest.fixture
async def gateway(
    upstream: Upstream,
    memory_store: MemoryKeyStore,
    hasher: KeyHasher,
    clock: FakeClock,
    tmp_path: Path,
) -> AsyncIterator[AuthGateway]:
    gw = await token_gateway(token_config(upstream, tmp_path), memory_store, hasher, clock)
    yield gw
    await gw.close()


def token_cli(*args: str, env: dict[str, str] | None = None) -> Result:
    environment = {"BASTION_API_KEY": "", "BASTION_URL": "", **(env or {})}
    return CliRunner().invoke(cli, ["token", *args], env=environment)


async def test_token_fetches_a_token_with_the_key_from_the_environment(
    gateway: AuthGateway, keys: KeyManager
) -> None:
    issued = keys.create("billing", scopes=("orders:read", "orders:write"))
    gateway.refresh()
    result = await asyncio.to_thread(
        token_cli,
        "--url",
        gateway.base,
        "--scope",
        "orders:read",
        env={"BASTION_API_KEY": issued.secret},
    )
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    assert claims_of(token)[1]["scope"] == "orders:read"
    assert issued.secret not in result.output


async def test_token_reads_an_owner_only_key_file(
    gateway: AuthGateway, keys: KeyManager, tmp_path: Path
) -> None:
    issued = keys.create("billing")
    gateway.refresh()
    key_file = tmp_path / "key"
    key_file.write_text(issued.secret + "\n")
    key_file.chmod(0o600)
    result = await asyncio.to_thread(
        token_cli, "--url", gateway.base, "--key-file", str(key_file), "--json"
    )
    assert result.exit_code == 0, result.output
    doc = orjson.loads(result.output)
    assert doc["token_type"] == "Bearer"
    assert doc["expires_in"] == 300
    key_file.chmod(0o644)
    loose = await asyncio.to_thread(token_cli, "--url", gateway.base, "--key-file", str(key_file))
    assert loose.exit_code == 2
    assert "expected 600" in loose.output


async def test_token_reports_the_gateways_refusal(gateway: AuthGateway, keys: KeyManager) -> None:
    issued = keys.create("billing", scopes=("orders:read",))
    gateway.refresh()
    result = await asyncio.to_thread(
        token_cli,
        "--url",
        gateway.base,
        "--scope",
        "admin",
        env={"BASTION_API_KEY": issued.secret},
    )
    assert result.exit_code == 1
    assert "invalid_scope: The key does not grant every scope requested. (HTTP 400)" in (
        result.output
    )


def test_token_never_takes_the_key_from_an_argument_or_plain_http() -> None:
    missing = token_cli("--url", "https://api.example.com")
    assert missing.exit_code == 2
    assert "set $BASTION_API_KEY or pass --key-file" in missing.output
    assert token_cli("--url", "https://x", "--key", "bst_x").exit_code == 2  # no such option
    key = "bst_" + "A" * 12 + "_" + "B" * 38
    bad = token_cli("--url", "https://api.example.com", env={"BASTION_API_KEY": key})
    assert bad.exit_code == 2
    assert "checksum" in bad.output
    from bastion.auth.keys.format import generate

    good = generate().secret
    plain = token_cli("--url", "http://api.example.com", env={"BASTION_API_KEY": good})
    assert plain.exit_code == 2
    assert "over https only" in plain.output
    assert good not in plain.output


def test_token_against_nothing_listening_fails_cleanly() -> None:
    from bastion.auth.keys.format import generate
    from tests.ports import free_port

    result = token_cli(
        "--url", f"http://127.0.0.1:{free_port()}", env={"BASTION_API_KEY": generate().secret}
    )
    assert result.exit_code == 1
    assert "cannot reach" in result.output


def test_cli_lists_the_new_commands() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert "jwks" in result.output
    assert "token" in result.output
