"""A real OpenID Connect provider's tokens through the gateway: the ``bearer_token`` guard finds
the provider by discovery, accepts its access tokens, follows its key rotation (the first token
with a new ``kid`` waits for one refetch), and refuses tokens meant for another API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest

from bastion.auth.jwt.jwks import IssuerKeys
from bastion.auth.keys.hashing import KeyHasher
from bastion.store import MemoryKeyStore
from tests.auth.helpers import AuthGateway, auth_config, start_auth_gateway
from tests.auth.oidc.conftest import RESOURCES, Provider
from tests.engine.upstream_app import Upstream


def routes(upstream: Upstream) -> list[dict[str, object]]:
    return [
        {
            "name": "orders",
            "upstream": upstream.url,
            "path_prefix": "/orders",
            "auth": {"scopes": ["read"]},
        },
        {
            "name": "admin",
            "upstream": upstream.url,
            "path_prefix": "/admin",
            "auth": {"scopes": ["admin"]},
        },
        {"name": "rest", "upstream": upstream.url},
    ]


@pytest.fixture
async def gateway(
    own_provider: Provider,
    upstream: Upstream,
    memory_store: MemoryKeyStore,
    hasher: KeyHasher,
    tmp_path: Path,
) -> AsyncIterator[AuthGateway]:
    config = auth_config(
        upstream.url,
        state_dir=str(tmp_path),
        routes=routes(upstream),
        auth={
            "tokens": {
                "issuers": [
                    {
                        "issuer": own_provider.issuer,
                        "audiences": [RESOURCES["ES256"]],
                        "algorithms": ["ES256"],
                        "token_type": "at+jwt",
                        "allow_http": True,
                    }
                ]
            }
        },
    )
    # Real time: the provider's tokens carry real iat/exp.
    gw = await start_auth_gateway(config, memory_store, hasher, time.time)  # type: ignore[arg-type]
    yield gw
    await gw.close()


async def get(gateway: AuthGateway, path: str, token: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=gateway.base, trust_env=False) as client:
        return await client.get(path, headers=headers)


async def test_provider_tokens_open_routes_with_their_scopes(
    gateway: AuthGateway, own_provider: Provider
) -> None:
    token = await asyncio.to_thread(own_provider.token, "ES256", "read")
    response = await get(gateway, "/orders/1", token)
    assert response.status_code == 200, response.text
    seen = {name: value for name, value in orjson.loads(response.content)["headers"]}
    assert seen["x-bastion-auth-method"] == "oidc"
    assert seen["x-bastion-scopes"] == "read"
    event = gateway.last("auth.success")
    assert event.fields["issuer"] == own_provider.issuer
    forbidden = await get(gateway, "/admin", token)
    assert forbidden.status_code == 403
    assert forbidden.headers["www-authenticate"].startswith("Bearer ")


async def test_with_a_provider_configured_auto_requires_credentials_at_once(
    gateway: AuthGateway,
) -> None:
    response = await get(gateway, "/rest")  # no API key exists, but the provider vouches
    assert response.status_code == 401
    assert response.headers.get_list("www-authenticate") == [
        'ApiKey realm="bastion"',
        'Bearer realm="bastion"',
    ]


async def test_a_token_for_another_api_is_refused(
    gateway: AuthGateway, own_provider: Provider
) -> None:
    token = await asyncio.to_thread(own_provider.token, "RS256", "read")  # another resource
    response = await get(gateway, "/orders", token)
    assert response.status_code == 401
    assert response.json()["code"] == "auth.invalid_token"


async def test_the_gateway_follows_the_providers_key_rotation(
    gateway: AuthGateway, own_provider: Provider
) -> None:
    before = await asyncio.to_thread(own_provider.token, "ES256", "read")
    assert (await get(gateway, "/orders", before)).status_code == 200
    keys = gateway.bearer.verifier.issuers[own_provider.issuer].keys
    assert isinstance(keys, IssuerKeys)
    assert keys.last_attempt is not None
    keys.last_attempt -= keys.refetch_cooldown  # the cooldown after the start's fetch is over
    await asyncio.to_thread(own_provider.rotate)
    after = await asyncio.to_thread(own_provider.token, "ES256", "read")
    assert (await get(gateway, "/orders", after)).status_code == 200  # one refetch
    assert (await get(gateway, "/orders", before)).status_code == 200  # still published
