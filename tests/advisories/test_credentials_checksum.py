"""Advisory: a tampered, truncated or made-up key must be refused cheaply and uniformly. The
CRC32 checksum at the end of every bastion key lets the gateway refuse a key with any changed
character before it looks anything up (reason ``malformed``), and lets secret scanners tell
real leaked keys from look-alikes. A key whose checksum was recomputed after tampering still
fails on its keyed hash."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from bastion.auth.keys.format import checksum
from bastion.auth.keys.hashing import KeyHasher
from bastion.auth.keys.manager import IssuedKey, KeyManager
from bastion.config.loader import build_config
from bastion.store import MemoryKeyStore
from tests.auth.helpers import PEPPER, AuthGateway, FakeClock, auth_config, start_auth_gateway
from tests.engine.upstream_app import Upstream


@pytest.fixture
async def gateway(upstream: Upstream) -> AsyncIterator[tuple[AuthGateway, IssuedKey]]:
    store, hasher, clock = MemoryKeyStore(), KeyHasher(PEPPER), FakeClock()
    issued = KeyManager(build_config({}, "t"), clock=clock, store=store, hasher=hasher).create(
        "acme"
    )
    gw = await start_auth_gateway(auth_config(upstream.url), store, hasher, clock)
    gw.refresh()
    yield gw, issued
    await gw.close()


def flip(text: str, position: int) -> str:
    return text[:position] + ("A" if text[position] != "A" else "B") + text[position + 1 :]


@pytest.mark.parametrize("position", [4, 15, 17, 33, 48, 50, 54])
async def test_a_tampered_key_fails_its_checksum(
    gateway: tuple[AuthGateway, IssuedKey], upstream: Upstream, position: int
) -> None:
    gw, issued = gateway
    async with httpx.AsyncClient(base_url=gw.base) as client:
        response = await client.get("/x", headers={"x-api-key": flip(issued.secret, position)})
    assert response.status_code == 401
    event = gw.last("auth.invalid_credentials")
    assert event.fields["reason"] == "malformed"
    assert "key_id" not in event.fields  # nothing from a malformed key is trusted enough to log
    assert upstream.seen == []


async def test_a_tampered_key_with_a_recomputed_checksum_fails_its_hash(
    gateway: tuple[AuthGateway, IssuedKey], upstream: Upstream
) -> None:
    gw, issued = gateway
    body = flip(issued.secret, 30)[:-6]
    async with httpx.AsyncClient(base_url=gw.base) as client:
        response = await client.get("/x", headers={"x-api-key": body + checksum(body)})
    assert response.status_code == 401
    event = gw.last("auth.invalid_credentials")
    assert event.fields["reason"] == "wrong_secret"
    assert event.fields["key_id"] == issued.record.id
    assert upstream.seen == []


async def test_the_genuine_key_passes(
    gateway: tuple[AuthGateway, IssuedKey], upstream: Upstream
) -> None:
    gw, issued = gateway
    async with httpx.AsyncClient(base_url=gw.base) as client:
        response = await client.get("/x", headers={"x-api-key": issued.secret})
    assert response.status_code == 200
