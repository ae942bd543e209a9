"""Advisory: credentials in a URL query string leak into browser history, access logs and
``Referer`` headers (RFC 6750 §5.3, RFC 9700 §2.5). bastion refuses them with 400
``auth.credentials_in_query``: the request never reaches the upstream, and the value appears in
no response, no security event and no log line."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx
import pytest

from bastion.auth.keys.hashing import KeyHasher
from bastion.auth.keys.manager import IssuedKey, KeyManager
from bastion.config.loader import build_config
from bastion.store import MemoryKeyStore
from tests.auth.helpers import PEPPER, AuthGateway, FakeClock, auth_config, start_auth_gateway
from tests.engine.upstream_app import Upstream

JWT = (
    "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6OTk5OTk5OTk5OX0"
    ".c2lnbmF0dXJlLW9mLWEtand0LWluLWEtcXVlcnk"
)


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


QUERIES = [
    "api_key={key}",
    "apikey={key}",
    "apiKey={key}",
    "API-KEY={key}",
    "x-api-key={key}",
    "api%5Fkey={key}",
    "api_key[]={key}",
    "page=2&access_token={key}",
    "token={key}&page=2",
    "key={key}",
    "q=1;key={key}",
    "client_secret={key}",
    "anything={key}",  # a bastion key under any name
    "anything={jwt}",  # a signed JWT under any name
    "anything=Bearer%20{jwt}",
]


@pytest.mark.parametrize("query", QUERIES)
async def test_a_credential_in_the_query_is_refused_and_never_forwarded_or_logged(
    gateway: tuple[AuthGateway, IssuedKey],
    upstream: Upstream,
    caplog: pytest.LogCaptureFixture,
    query: str,
) -> None:
    gw, issued = gateway
    caplog.set_level(logging.DEBUG, logger="bastion")
    target = "/orders?" + query.format(key=issued.secret, jwt=JWT)
    async with httpx.AsyncClient(base_url=gw.base) as client:
        response = await client.get(target, headers={"x-api-key": issued.secret})
    assert response.status_code == 400
    problem = response.json()
    assert problem["code"] == "auth.credentials_in_query"
    assert problem["detail"] == (
        "Credentials must be sent in a request header, never in the URL query string."
    )
    assert upstream.seen == []
    assert gw.actions() == ["auth.credentials_in_query"]
    logged = "\n".join(  # bastion's own log lines (the test client logs the URL it sends)
        r.getMessage() for r in caplog.records if r.name.startswith("bastion")
    )
    for secret in (issued.secret, JWT, issued.secret[17:49]):
        assert secret not in response.text
        assert secret not in gw.ecs_text()
        assert secret not in logged


async def test_ordinary_queries_pass(
    gateway: tuple[AuthGateway, IssuedKey], upstream: Upstream
) -> None:
    gw, issued = gateway
    async with httpx.AsyncClient(base_url=gw.base) as client:
        for query in ("page=2&sort=name", "monkey=1", "keyword=x", "tokens=3", "q=bst_", "e=eyJ"):
            response = await client.get(f"/x?{query}", headers={"x-api-key": issued.secret})
            assert response.status_code == 200, query
    assert len(upstream.seen) == 6


async def test_the_event_names_the_parameter_not_the_value(
    gateway: tuple[AuthGateway, IssuedKey],
) -> None:
    gw, issued = gateway
    async with httpx.AsyncClient(base_url=gw.base) as client:
        await client.get(f"/x?Access-Token={issued.secret}")
    event = gw.last("auth.credentials_in_query")
    assert event.fields == {"parameter": "accesstoken"}
    assert event.status == 400
    assert "?" not in event.path
