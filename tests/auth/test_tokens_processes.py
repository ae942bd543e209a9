"""Tokens across real ``bastion serve`` processes sharing their stores: a token issued by one is
accepted by the other, ``bastion jwks rotate`` is in force on both within a second (through the
Redis announcement with PostgreSQL, through the store poll with files), and revoking the API key
a token was issued for refuses that token on both within a second."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from click.testing import CliRunner

from bastion.cli.main import cli
from tests.auth.test_revocation import Gateway, gateways, keys, write_config
from tests.engine.upstream_app import Upstream

__all__ = ["gateways"]

WITHIN = 1.0
SIGNING = {"issuer": "https://gateway.bastion.test", "audiences": ["https://api.bastion.test"]}
PEPPER = "process-test-pepper-" + "k" * 32


def kid_of(token: str) -> str:
    head = token.split(".")[0]
    return str(json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))["kid"])


async def token_from(client: httpx.AsyncClient, gateway: Gateway, key: dict[str, Any]) -> str:
    response = await client.post(
        f"http://127.0.0.1:{gateway.port}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(key["id"], key["secret"]),
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def bearer_status(client: httpx.AsyncClient, gateway: Gateway, token: str) -> int:
    response = await client.get(
        f"http://127.0.0.1:{gateway.port}/orders", headers={"authorization": f"Bearer {token}"}
    )
    return response.status_code


def rotate(config: Path) -> str:
    result = CliRunner().invoke(cli, ["jwks", "rotate", "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    return str(orjson.loads(result.output)["kid"])


async def rotation_in_force_after(config: Path, pair: list[Gateway], key: dict[str, Any]) -> float:
    """Rotate with the CLI; seconds until both gateways sign with the new key and accept each
    other's new tokens."""
    async with httpx.AsyncClient(timeout=2) as client:
        before = {kid_of(await token_from(client, g, key)) for g in pair}
        assert len(before) == 1  # one signing key everywhere
        started = time.monotonic()
        kid = await asyncio.to_thread(rotate, config)
        while True:
            tokens = [await token_from(client, g, key) for g in pair]
            elapsed = time.monotonic() - started
            if all(kid_of(t) == kid for t in tokens):
                break
            assert elapsed < 5, [kid_of(t) for t in tokens]
            await asyncio.sleep(0.02)
        # each gateway accepts the other's token, and one signed before the rotation
        assert await bearer_status(client, pair[0], tokens[1]) == 200
        assert await bearer_status(client, pair[1], tokens[0]) == 200
        return elapsed


async def test_rotation_reaches_two_gateways_within_a_second_through_redis(
    tmp_path: Path,
    upstream: Upstream,
    gateways: Callable[[Path], Any],
    postgres_dsn: str,
    pg_schema: str,
    redis_url: str,
    redis_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BASTION_API_KEY_PEPPER", PEPPER)
    # The store poll is slowed to 30 s: only the announcement can be this fast.
    config = write_config(
        tmp_path / "bastion.yaml",
        upstream,
        postgres={"dsn": postgres_dsn, "schema": pg_schema},
        redis={"url": redis_url, "key_prefix": redis_prefix},
        auth={"tokens": {"signing": {**SIGNING, "resync_interval": "30s"}}},
    )
    key = keys(config, "create", "--consumer", "billing")
    first, second = await gateways(config), await gateways(config)
    await asyncio.sleep(0.3)  # both subscribed
    elapsed = await rotation_in_force_after(config, [first, second], key)
    print(f"rotation in force everywhere after {elapsed * 1000:.0f} ms")
    assert elapsed < WITHIN


async def test_rotation_reaches_two_gateways_within_a_second_without_redis(
    tmp_path: Path, upstream: Upstream, gateways: Callable[[Path], Any]
) -> None:
    config = write_config(
        tmp_path / "bastion.yaml", upstream, auth={"tokens": {"signing": SIGNING}}
    )  # files under state_dir, polled every 0.5 s
    key = keys(config, "create", "--consumer", "billing")
    first, second = await gateways(config), await gateways(config)
    elapsed = await rotation_in_force_after(config, [first, second], key)
    print(f"rotation in force everywhere after {elapsed * 1000:.0f} ms")
    assert elapsed < WITHIN


async def test_revoking_the_key_refuses_its_tokens_on_both_gateways_within_a_second(
    tmp_path: Path, upstream: Upstream, gateways: Callable[[Path], Any]
) -> None:
    config = write_config(
        tmp_path / "bastion.yaml", upstream, auth={"tokens": {"signing": SIGNING}}
    )
    key = keys(config, "create", "--consumer", "billing")
    first, second = await gateways(config), await gateways(config)
    async with httpx.AsyncClient(timeout=2) as client:
        token = await token_from(client, first, key)
        assert [await bearer_status(client, g, token) for g in (first, second)] == [200, 200]
        started = time.monotonic()
        await asyncio.to_thread(keys, config, "revoke", key["id"])
        while True:
            statuses = [await bearer_status(client, g, token) for g in (first, second)]
            elapsed = time.monotonic() - started
            if statuses == [401, 401]:
                break
            assert elapsed < 5, statuses
            await asyncio.sleep(0.02)
    print(f"token refused everywhere after {elapsed * 1000:.0f} ms")
    assert elapsed < WITHIN
