"""Advisory: broken object-level authorization (OWASP API1:2023). A caller who changes an id in
the path, the query or the body must not reach another caller's object, and the usual ways
around such a check (parameter pollution, duplicate JSON members, another encoding, another
content type) must not work either."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bastion.auth.keys.hashing import KeyHasher
from bastion.auth.keys.manager import IssuedKey, KeyManager
from bastion.config.loader import build_config
from bastion.store import MemoryKeyStore
from tests.auth.helpers import PEPPER, AuthGateway, FakeClock, auth_config, start_auth_gateway
from tests.engine.upstream_app import Upstream

RULES = [
    {"name": "users", "path_prefix": "/users",
     "auth": {"objects": [{"in": "path", "template": "/users/{id}", "name": "id"}]}},
    {"name": "invoices", "path_prefix": "/invoices",
     "auth": {"objects": [{"in": "query", "name": "account"}]}},
    {"name": "notes", "path_prefix": "/notes",
     "auth": {"objects": [{"in": "body", "name": "/owner"}]}},
]  # fmt: skip


@pytest.fixture
async def gateway(upstream: Upstream, tmp_path: Path) -> AsyncIterator[tuple[AuthGateway, str]]:
    store, hasher, clock = MemoryKeyStore(), KeyHasher(PEPPER), FakeClock()
    issued: IssuedKey = KeyManager(
        build_config({}, "t"), clock=clock, store=store, hasher=hasher
    ).create("alice")
    config = auth_config(upstream.url, routes=[{**r, "upstream": upstream.url} for r in RULES])
    gw = await start_auth_gateway(config, store, hasher, clock)
    gw.refresh()
    yield gw, issued.secret
    await gw.close()


async def send(
    gateway: tuple[AuthGateway, str], method: str, path: str, **kwargs: object
) -> httpx.Response:
    gw, key = gateway
    headers = {"x-api-key": key, **kwargs.pop("headers", {})}  # type: ignore[dict-item]
    async with httpx.AsyncClient(base_url=gw.base) as client:
        return await client.request(method, path, headers=headers, **kwargs)  # type: ignore[arg-type]


def refused(response: httpx.Response, upstream: Upstream) -> bool:
    return (
        response.status_code == 403
        and response.json()["code"] == "auth.forbidden_object"
        and upstream.seen == []
    )


async def test_another_users_id_in_the_path_refused(
    gateway: tuple[AuthGateway, str], upstream: Upstream
) -> None:
    assert refused(await send(gateway, "GET", "/users/bob"), upstream)


async def test_query_parameter_pollution_refused(
    gateway: tuple[AuthGateway, str], upstream: Upstream
) -> None:
    for query in ("account=alice&account=bob", "account=bob&account=alice",
                  "account=alice;account=bob", "account[]=bob&account=alice"):  # fmt: skip
        assert refused(await send(gateway, "GET", f"/invoices?{query}"), upstream), query


async def test_percent_encoded_query_name_is_still_the_parameter(
    gateway: tuple[AuthGateway, str], upstream: Upstream
) -> None:
    assert refused(await send(gateway, "GET", "/invoices?account=alice&acc%6Funt=bob"), upstream)


async def test_duplicate_json_member_refused(
    gateway: tuple[AuthGateway, str], upstream: Upstream
) -> None:
    body = b'{"owner": "alice", "owner": "bob"}'  # parsers disagree about which one wins
    response = await send(
        gateway, "POST", "/notes", content=body, headers={"content-type": "application/json"}
    )
    assert refused(response, upstream)


async def test_non_json_body_refused_where_a_body_rule_applies(
    gateway: tuple[AuthGateway, str], upstream: Upstream
) -> None:
    response = await send(
        gateway,
        "POST",
        "/notes",
        content=b"owner=bob",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert refused(response, upstream)


async def test_percent_encoded_path_id_is_compared_decoded(
    gateway: tuple[AuthGateway, str], upstream: Upstream
) -> None:
    assert refused(await send(gateway, "GET", "/users/%62ob"), upstream)
    ok = await send(gateway, "GET", "/users/%61lice")  # "alice", as the upstream decodes it
    assert ok.status_code == 200


async def test_numeric_body_value_does_not_match_a_string_claim_by_accident(
    gateway: tuple[AuthGateway, str], upstream: Upstream
) -> None:
    for body in (b'{"owner": ["alice"]}', b'{"owner": true}', b'{"owner": null}'):
        response = await send(
            gateway, "POST", "/notes", content=body, headers={"content-type": "application/json"}
        )
        assert refused(response, upstream), body
