"""Shared pieces of the token tests: a gateway that signs tokens, and ways to ask it for one."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from bastion.auth.jwt.keystore import MemorySigningKeyStore, SigningKeyStore
from bastion.auth.keys.hashing import KeyHasher
from bastion.config.models import BastionConfig
from bastion.store import MemoryKeyStore
from tests.auth.helpers import AuthGateway, FakeClock, auth_config, start_auth_gateway
from tests.engine.upstream_app import Upstream

ISSUER = "https://gateway.bastion.test"
AUDIENCE = "https://api.bastion.test"
OTHER_AUDIENCE = "https://reports.bastion.test"
FORM = {"content-type": "application/x-www-form-urlencoded"}

ROUTES = [
    {"name": "orders", "upstream": "UP", "path_prefix": "/orders",
     "auth": {"scopes": ["orders:read"], "method_scopes": {"POST": ["orders:write"]}}},
    {"name": "admin", "upstream": "UP", "path_prefix": "/admin", "auth": {"scopes": ["admin"]}},
    {"name": "health", "upstream": "UP", "path_prefix": "/health", "auth": {"require": "public"}},
    {"name": "rest", "upstream": "UP"},
]  # fmt: skip


def token_config(upstream: Upstream, state_dir: Path, **auth: Any) -> BastionConfig:
    signing = {"issuer": ISSUER, "audiences": [AUDIENCE, OTHER_AUDIENCE]}
    tokens: dict[str, Any] = {"signing": signing, **auth.pop("tokens", {})}
    return auth_config(
        upstream.url,
        routes=[{**r, "upstream": upstream.url} for r in ROUTES],
        state_dir=str(state_dir),
        auth={"tokens": tokens, **auth},
    )


async def token_gateway(
    config: BastionConfig,
    store: MemoryKeyStore,
    hasher: KeyHasher,
    clock: FakeClock,
    signing_store: SigningKeyStore | None = None,
) -> AuthGateway:
    return await start_auth_gateway(
        config,
        store,
        hasher,
        clock,
        signing_store=signing_store if signing_store is not None else MemorySigningKeyStore(),
    )


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def request_token(
    gateway: AuthGateway,
    *,
    headers: dict[str, str] | None = None,
    data: str = "grant_type=client_credentials",
    path: str = "/oauth/token",
    method: str = "POST",
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=gateway.base) as client:
        return await client.request(
            method, path, headers={**FORM, **(headers or {})}, content=data.encode()
        )


async def token_for(gateway: AuthGateway, key_id: str, secret: str, scope: str = "") -> str:
    data = "grant_type=client_credentials" + (f"&scope={scope}" if scope else "")
    response = await request_token(gateway, headers={"authorization": basic(key_id, secret)},
                                   data=data)  # fmt: skip
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def claims_of(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims of a compact JWS, unverified (for assertions only)."""
    head, body, _ = token.split(".")

    def decode(segment: str) -> dict[str, Any]:
        return dict(json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))))

    return decode(head), decode(body)


async def get(gateway: AuthGateway, path: str, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=gateway.base) as client:
        return await client.get(path, headers=headers)


async def closing(gateway: AuthGateway) -> AsyncIterator[AuthGateway]:
    try:
        yield gateway
    finally:
        await gateway.close()
