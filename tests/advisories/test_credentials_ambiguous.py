"""Advisory: two credentials in one request. Which one decides differs between proxies,
frameworks and upstreams (the first header, the last, the Authorization one), and an attacker
can pair a valid low-privilege credential with another one the upstream prefers. bastion refuses
the request with 400 ``auth.ambiguous_credentials`` before any credential is checked."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bastion.auth.keys.hashing import KeyHasher
from bastion.auth.keys.manager import IssuedKey, KeyManager
from bastion.config.loader import build_config
from bastion.store import MemoryKeyStore
from tests.auth.helpers import PEPPER, AuthGateway, FakeClock, auth_config, start_auth_gateway
from tests.engine.helpers import head_and_body, raw, status_of
from tests.engine.upstream_app import Upstream


@pytest.fixture
async def gateway(upstream: Upstream) -> AsyncIterator[tuple[AuthGateway, IssuedKey, IssuedKey]]:
    store, hasher, clock = MemoryKeyStore(), KeyHasher(PEPPER), FakeClock()
    manager = KeyManager(build_config({}, "t"), clock=clock, store=store, hasher=hasher)
    low, high = manager.create("low"), manager.create("high", scopes=("admin",))
    gw = await start_auth_gateway(auth_config(upstream.url), store, hasher, clock)
    gw.refresh()
    yield gw, low, high
    await gw.close()


@pytest.mark.parametrize(
    "fields",
    [
        ["x-api-key: {low}", "x-api-key: {high}"],
        ["x-api-key: {low}", "x-api-key: {low}"],
        ["x-api-key: {low}", "authorization: ApiKey {high}"],
        ["authorization: ApiKey {low}", "authorization: ApiKey {high}"],
        ["x-api-key: {low}", "authorization: Bearer some.jwt.token"],
        ["authorization: Basic dXNlcjpwYXNz", "authorization: ApiKey {low}"],
    ],
)
async def test_two_credentials_are_refused(
    gateway: tuple[AuthGateway, IssuedKey, IssuedKey], upstream: Upstream, fields: list[str]
) -> None:
    gw, low, high = gateway
    lines = "".join(f"{f.format(low=low.secret, high=high.secret)}\r\n" for f in fields)
    response = await raw(
        gw.server.port, f"GET /x HTTP/1.1\r\nhost: t\r\n{lines}connection: close\r\n\r\n".encode()
    )
    assert status_of(response) == 400
    _, body = head_and_body(response)
    assert b"auth.ambiguous_credentials" in body
    assert upstream.seen == []
    assert gw.actions() == ["auth.ambiguous_credentials"]
    assert low.secret not in gw.ecs_text()
    assert high.secret not in gw.ecs_text()


async def test_one_credential_passes(
    gateway: tuple[AuthGateway, IssuedKey, IssuedKey], upstream: Upstream
) -> None:
    gw, low, _ = gateway
    response = await raw(
        gw.server.port,
        f"GET /x HTTP/1.1\r\nhost: t\r\nx-api-key: {low.secret}\r\n"
        "connection: close\r\n\r\n".encode(),
    )
    assert status_of(response) == 200
    assert len(upstream.seen) == 1
