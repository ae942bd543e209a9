"""Object-level rules (OWASP API1) end to end: a path, query or body value must equal a claim of
the caller; admins bypass; the config refuses rules that could never hold."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from types import MappingProxyType
from typing import Any

import httpx
import pytest

from bastion.auth.keys.hashing import KeyHasher
from bastion.auth.keys.manager import KeyManager
from bastion.auth.objects import ObjectAuthorization, claim_values
from bastion.config.loader import build_config
from bastion.errors import ConfigError
from bastion.pipeline.identity import Identity
from bastion.store import MemoryKeyStore
from tests.auth.helpers import AuthGateway, FakeClock, auth_config
from tests.auth.tokens_helpers import AUDIENCE, ISSUER, token_for, token_gateway
from tests.engine.upstream_app import Upstream

OBJECT_ROUTES: list[dict[str, Any]] = [
    {"name": "users", "path_prefix": "/users",
     "auth": {"objects": [{"in": "path", "template": "/users/{user_id}", "name": "user_id"}],
              "bypass_scopes": ["admin"]}},
    {"name": "invoices", "path_prefix": "/invoices",
     "auth": {"objects": [{"in": "query", "name": "account", "claim": "sub"}]}},
    {"name": "notes", "path_prefix": "/notes",
     "auth": {"objects": [{"in": "body", "name": "/owner/id", "claim": "sub",
                           "when_missing": "allow"}]}},
    {"name": "teams", "path_prefix": "/teams",
     "auth": {"objects": [{"in": "path", "template": "/teams/{team}/members", "name": "team",
                           "claim": "client_id"}]}},
    {"name": "rest"},
]  # fmt: skip


def object_config(upstream: Upstream, tmp_path: Path) -> Any:
    return auth_config(
        upstream.url,
        routes=[{**r, "upstream": upstream.url} for r in OBJECT_ROUTES],
        state_dir=str(tmp_path),
        auth={"tokens": {"signing": {"issuer": ISSUER, "audiences": [AUDIENCE]}}},
    )


@pytest.fixture
async def gateway(
    upstream: Upstream,
    memory_store: MemoryKeyStore,
    hasher: KeyHasher,
    clock: FakeClock,
    tmp_path: Path,
) -> AsyncIterator[AuthGateway]:
    gw = await token_gateway(object_config(upstream, tmp_path), memory_store, hasher, clock)
    yield gw
    await gw.close()


async def call(
    gateway: AuthGateway, method: str, path: str, key: str, **kwargs: Any
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=gateway.base) as client:
        return await client.request(method, path, headers={"x-api-key": key}, **kwargs)


async def test_a_path_id_must_be_the_callers(
    gateway: AuthGateway, keys: KeyManager, upstream: Upstream
) -> None:
    alice = keys.create("alice")
    gateway.refresh()
    assert (await call(gateway, "GET", "/users/alice", alice.secret)).status_code == 200
    assert (await call(gateway, "GET", "/users/alice/orders/3", alice.secret)).status_code == 200
    refused = await call(gateway, "GET", "/users/bob", alice.secret)
    assert refused.status_code == 403
    assert refused.json()["code"] == "auth.forbidden_object"
    assert "bob" not in refused.text
    event = gateway.last("auth.forbidden_object")
    assert event.fields == {
        "route": "users",
        "reason": "mismatch",
        "rule": "path:user_id",
        "claim": "sub",
        "consumer": "alice",
        "auth_method": "api_key",
        "key_id": alice.record.id,
    }
    assert not [s for s in upstream.seen if s.target == "/users/bob"]


async def test_a_request_without_the_value_is_refused_unless_allowed(
    gateway: AuthGateway, keys: KeyManager
) -> None:
    alice = keys.create("alice")
    gateway.refresh()
    listing = await call(gateway, "GET", "/users", alice.secret)
    assert listing.status_code == 403
    assert gateway.last("auth.forbidden_object").fields["reason"] == "missing"
    assert (await call(gateway, "GET", "/invoices", alice.secret)).status_code == 403
    # notes: when_missing allow, so a body without /owner/id passes
    ok = await call(gateway, "POST", "/notes", alice.secret, json={"text": "hi"})
    assert ok.status_code == 200


async def test_admins_bypass_the_rules(gateway: AuthGateway, keys: KeyManager) -> None:
    admin = keys.create("support", scopes=("admin",))
    gateway.refresh()
    assert (await call(gateway, "GET", "/users/bob", admin.secret)).status_code == 200


async def test_query_and_body_values(gateway: AuthGateway, keys: KeyManager) -> None:
    alice = keys.create("alice")
    gateway.refresh()
    assert (await call(gateway, "GET", "/invoices?account=alice", alice.secret)).status_code == 200
    assert (await call(gateway, "GET", "/invoices?account=bob", alice.secret)).status_code == 403
    mine = await call(gateway, "POST", "/notes", alice.secret, json={"owner": {"id": "alice"}})
    assert mine.status_code == 200
    theirs = await call(gateway, "POST", "/notes", alice.secret, json={"owner": {"id": "bob"}})
    assert theirs.status_code == 403


async def test_an_api_keys_client_id_is_its_key_id(gateway: AuthGateway, keys: KeyManager) -> None:
    key = keys.create("alice")
    gateway.refresh()
    ok = await call(gateway, "GET", f"/teams/{key.record.id}/members", key.secret)
    assert ok.status_code == 200
    assert (await call(gateway, "GET", "/teams/other/members", key.secret)).status_code == 403


async def test_token_claims_are_compared(gateway: AuthGateway, keys: KeyManager) -> None:
    key = keys.create("alice")
    gateway.refresh()
    token = await token_for(gateway, key.record.id, key.secret)
    async with httpx.AsyncClient(base_url=gateway.base) as client:
        mine = await client.get("/users/alice", headers={"authorization": f"Bearer {token}"})
        theirs = await client.get("/users/bob", headers={"authorization": f"Bearer {token}"})
    assert mine.status_code == 200
    assert theirs.status_code == 403
    assert gateway.last("auth.forbidden_object").fields["auth_method"] == "jwt"


async def test_routes_without_rules_are_untouched(gateway: AuthGateway, keys: KeyManager) -> None:
    alice = keys.create("alice")
    gateway.refresh()
    assert (await call(gateway, "GET", "/anything/bob", alice.secret)).status_code == 200


def test_claim_values_of_keys_and_tokens() -> None:
    key = Identity("alice", "api_key", key_id="K1", tier="gold")
    assert claim_values(key, "sub") == {"alice"}
    assert claim_values(key, "consumer") == {"alice"}
    assert claim_values(key, "client_id") == {"K1"}
    assert claim_values(key, "tier") == {"gold"}
    assert claim_values(key, "tenant") == frozenset()
    token = Identity(
        "u-1",
        "oidc",
        claims=MappingProxyType({"sub": "u-1", "tenants": ["a", 7, True, None], "org": 42}),
    )
    assert claim_values(token, "tenants") == {"a", "7"}  # booleans and nulls never match
    assert claim_values(token, "org") == {"42"}
    assert claim_values(token, "client_id") == frozenset()  # not a key: no stand-in


def test_the_guard_reads_bodies_only_when_a_rule_needs_them(tmp_path: Path) -> None:
    def guard(rule: dict[str, str]) -> ObjectAuthorization:
        config = build_config(
            {"routes": [{"name": "r", "upstream": "http://u", "auth": {"objects": [rule]}}]}, "t"
        )
        return ObjectAuthorization.from_config(config)

    assert not guard({"in": "query", "name": "a"}).requires_body
    assert guard({"in": "body", "name": "/a"}).requires_body


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        ({"objects": [{"in": "path", "name": "id"}]}, "in: path needs template"),
        ({"objects": [{"in": "path", "name": "id", "template": "/u/{user}"}]}, "not a parameter"),
        ({"objects": [{"in": "query", "name": "a", "template": "/u/{a}"}]}, "only for in: path"),
        ({"objects": [{"in": "body", "name": "owner"}]}, "JSON pointer"),
        ({"objects": [{"in": "query", "name": "a b"}]}, "query parameter name"),
        ({"objects": [{"in": "query", "name": "a", "claim": "x y"}]}, "claim name"),
        ({"require": "public", "objects": [{"in": "query", "name": "a"}]}, "objects are set"),
        ({"bypass_scopes": ["admin"]}, "without objects"),
    ],
)
def test_rules_that_could_never_hold_are_config_errors(auth: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_config({"routes": [{"name": "r", "upstream": "http://u", "auth": auth}]}, "t")
