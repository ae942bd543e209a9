"""Advisory: upstreams behind a gateway trust identity headers (``X-Bastion-Consumer``...) as
the gateway's word. If a client's own copy passed through, anyone could claim any identity. bastion
removes every inbound copy of its identity headers, for anonymous and authenticated requests
alike, in gateway and in middleware mode, and writes its own after the header filtering."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import orjson
import pytest

from bastion.asgi import BastionMiddleware, request_view
from bastion.auth.keys.hashing import KeyHasher
from bastion.store import MemoryKeyStore
from tests.auth.helpers import PEPPER, AuthGateway, FakeClock, auth_config, start_auth_gateway
from tests.engine.upstream_app import Upstream

SPOOFED = {
    "x-bastion-consumer": "root",
    "x-bastion-scopes": "admin",
    "x-bastion-key-id": "forged",
    "x-bastion-tier": "unlimited",
    "x-bastion-auth-method": "mtls",
    "x-user": "root",
}


@pytest.fixture
async def gateway(upstream: Upstream) -> AsyncIterator[AuthGateway]:
    config = auth_config(
        upstream.url,
        auth={"default": "public", "identity_headers": {"consumer": "x-user"}},
    )
    gw = await start_auth_gateway(config, MemoryKeyStore(), KeyHasher(PEPPER), FakeClock())
    yield gw
    await gw.close()


async def test_inbound_identity_headers_never_reach_the_upstream(gateway: AuthGateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.base) as client:
        response = await client.get("/x", headers=SPOOFED)
    seen = {name for name, _ in orjson.loads(response.content)["headers"]}
    # the configured name and every default name are stripped
    assert not seen & set(SPOOFED)


async def test_inbound_identity_headers_never_reach_the_app() -> None:
    seen: list[list[tuple[bytes, bytes]]] = []

    async def app(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
        seen.append(list(scope["headers"]))
        assert request_view(scope) is not None
        await send({"type": "http.response.start", "status": 204, "headers": []})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b""})  # type: ignore[operator]

    config = auth_config("http://unused", auth={"default": "public"})
    middleware = BastionMiddleware(app, config.model_copy(update={"state_dir": "/nonexistent"}))
    transport = httpx.ASGITransport(app=middleware)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/x", headers=SPOOFED)
    assert response.status_code == 204
    names = {name.decode() for name, _ in seen[0]}
    assert not names & (set(SPOOFED) - {"x-user"})
