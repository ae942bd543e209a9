"""The API-key guard end to end: the real engine on a loopback port, the recording upstream
behind it, keys made by the key manager, time moved by a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import orjson
import pytest

from bastion.auth.keys.format import checksum, generate
from bastion.auth.keys.hashing import KeyHasher
from bastion.auth.keys.manager import KeyManager
from bastion.errors import BackendUnavailable
from bastion.store import MemoryKeyStore
from tests.auth.helpers import DAY, AuthGateway, FakeClock, auth_config, start_auth_gateway
from tests.engine.upstream_app import Upstream

ROUTES = [
    {"name": "orders", "upstream": "UP", "path_prefix": "/orders",
     "auth": {"scopes": ["orders:read"], "method_scopes": {"POST": ["orders:write"]}}},
    {"name": "admin", "upstream": "UP", "path_prefix": "/admin", "auth": {"scopes": ["admin"]}},
    {"name": "health", "upstream": "UP", "path_prefix": "/health", "auth": {"require": "public"}},
    {"name": "catalog", "upstream": "UP", "path_prefix": "/catalog",
     "auth": {"require": "optional"}},
    {"name": "rest", "upstream": "UP"},
]  # fmt: skip


def routes(upstream: Upstream) -> list[dict[str, object]]:
    return [{**r, "upstream": upstream.url} for r in ROUTES]


@pytest.fixture
async def gateway(
    upstream: Upstream, memory_store: MemoryKeyStore, hasher: KeyHasher, clock: FakeClock
) -> AsyncIterator[AuthGateway]:
    config = auth_config(upstream.url, routes=routes(upstream))
    gw = await start_auth_gateway(config, memory_store, hasher, clock)
    yield gw
    await gw.close()


async def get(gw: AuthGateway, path: str, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=gw.base) as client:
        return await client.get(path, headers=headers)


def seen_headers(response: httpx.Response) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, value in orjson.loads(response.content)["headers"]:
        found.setdefault(name, []).append(value)
    return found


async def test_success_forwards_identity_and_strips_the_key(
    gateway: AuthGateway, keys: KeyManager, upstream: Upstream
) -> None:
    issued = keys.create("acme", scopes=("orders:read", "extra"), tier="gold")
    gateway.refresh()
    response = await get(gateway, "/orders/1", **{"X-API-Key": issued.secret})
    assert response.status_code == 200
    seen = seen_headers(response)
    assert seen["x-bastion-consumer"] == ["acme"]
    assert seen["x-bastion-key-id"] == [issued.record.id]
    assert seen["x-bastion-scopes"] == ["extra orders:read"]
    assert seen["x-bastion-tier"] == ["gold"]
    assert seen["x-bastion-auth-method"] == ["api_key"]
    assert "x-api-key" not in seen  # the upstream never receives the secret
    assert issued.secret not in response.text
    event = gateway.last("auth.success")
    assert event.fields["consumer"] == "acme"
    assert event.fields["key_id"] == issued.record.id
    assert event.fields["route"] == "orders"
    assert issued.secret not in gateway.ecs_text()


async def test_the_authorization_apikey_scheme_works_too(
    gateway: AuthGateway, keys: KeyManager
) -> None:
    issued = keys.create("acme")
    gateway.refresh()
    response = await get(gateway, "/rest", authorization=f"ApiKey {issued.secret}")
    assert response.status_code == 200
    seen = seen_headers(response)
    assert seen["x-bastion-consumer"] == ["acme"]
    assert "authorization" not in seen


async def test_spoofed_identity_headers_are_stripped_for_everyone(
    gateway: AuthGateway, keys: KeyManager
) -> None:
    spoof = {
        "X-Bastion-Consumer": "admin",
        "X-Bastion-Scopes": "admin",
        "X-Bastion-Key-Id": "forged",
        "X-Bastion-Tier": "unlimited",
        "X-Bastion-Auth-Method": "mtls",
    }
    anonymous = seen_headers(await get(gateway, "/health", **spoof))
    assert not any(name.startswith("x-bastion-") for name in anonymous)
    issued = keys.create("acme")
    gateway.refresh()
    known = seen_headers(await get(gateway, "/rest", **spoof, **{"x-api-key": issued.secret}))
    assert known["x-bastion-consumer"] == ["acme"]
    assert "x-bastion-scopes" not in known  # the key has no scopes
    assert known["x-bastion-key-id"] == [issued.record.id]
    assert "x-bastion-tier" not in known  # the key has no tier; the spoofed one is gone


async def test_a_connection_header_cannot_drop_the_identity_headers(
    gateway: AuthGateway, keys: KeyManager
) -> None:
    issued = keys.create("acme")
    gateway.refresh()
    response = await get(
        gateway, "/rest", connection="x-bastion-consumer", **{"x-api-key": issued.secret}
    )
    assert seen_headers(response)["x-bastion-consumer"] == ["acme"]


async def test_missing_credentials_is_401_with_a_challenge(
    gateway: AuthGateway, keys: KeyManager, upstream: Upstream
) -> None:
    keys.create("acme")  # a key exists: auth.default auto now means required
    gateway.refresh()
    response = await get(gateway, "/rest")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'ApiKey realm="bastion"'
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["cache-control"] == "no-store"
    assert response.json()["code"] == "auth.missing_credentials"
    assert upstream.seen == []
    assert gateway.last("auth.missing_credentials").fields == {"route": "rest"}


async def test_auto_is_public_only_while_no_key_exists(
    gateway: AuthGateway, keys: KeyManager
) -> None:
    assert (await get(gateway, "/rest")).status_code == 200
    issued = keys.create("acme")
    keys.revoke(issued.record.id)  # revoked keys count: the gateway never reopens
    gateway.refresh()
    assert (await get(gateway, "/rest")).status_code == 401


async def test_public_and_optional_routes(gateway: AuthGateway, keys: KeyManager) -> None:
    issued = keys.create("acme")
    gateway.refresh()
    assert (await get(gateway, "/health")).status_code == 200
    assert (await get(gateway, "/catalog")).status_code == 200
    known = await get(gateway, "/catalog", **{"x-api-key": issued.secret})
    assert seen_headers(known)["x-bastion-consumer"] == ["acme"]
    # A bad key is refused even where no key is needed: it never degrades to anonymous.
    last = "y" if issued.secret.endswith("x") else "x"  # always another key than the one issued
    bad = await get(gateway, "/health", **{"x-api-key": issued.secret[:-1] + last})
    assert bad.status_code == 401
    assert bad.json()["code"] == "auth.invalid_credentials"


async def test_insufficient_scope_is_403(gateway: AuthGateway, keys: KeyManager) -> None:
    reader = keys.create("reader", scopes=("orders:read",))
    gateway.refresh()
    assert (await get(gateway, "/orders", **{"x-api-key": reader.secret})).status_code == 200
    response = await get(gateway, "/admin", **{"x-api-key": reader.secret})
    assert response.status_code == 403
    assert response.json()["code"] == "auth.insufficient_scope"
    assert response.headers["www-authenticate"] == (
        'ApiKey realm="bastion", error="insufficient_scope", scope="admin"'
    )
    event = gateway.last("auth.insufficient_scope")
    assert event.fields["consumer"] == "reader"
    assert event.fields["key_id"] == reader.record.id
    assert event.fields["missing_scopes"] == ["admin"]
    async with httpx.AsyncClient(base_url=gateway.base) as client:
        post = await client.post("/orders", headers={"x-api-key": reader.secret}, json={})
    assert post.status_code == 403
    assert gateway.last("auth.insufficient_scope").fields["missing_scopes"] == ["orders:write"]


@pytest.mark.parametrize(
    ("presented", "reason"),
    [
        ("tampered", "malformed"),
        ("not-a-key", "malformed"),
        ("unknown", "unknown_key"),
        ("wrong-secret", "wrong_secret"),
    ],
)
async def test_invalid_keys_are_401_with_the_reason_in_the_event(
    gateway: AuthGateway, keys: KeyManager, presented: str, reason: str
) -> None:
    issued = keys.create("acme")
    gateway.refresh()
    secret = issued.secret
    forged = secret[:17] + generate().secret[17:49]  # the real id, another secret
    key = {
        "tampered": secret[:-1] + ("A" if secret[-1] != "A" else "B"),
        "not-a-key": "not-a-key",
        "unknown": generate().secret,  # well-formed, but no such id
        "wrong-secret": forged + checksum(forged),
    }[presented]
    response = await get(gateway, "/rest", **{"x-api-key": key})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'ApiKey realm="bastion"'
    assert response.json()["detail"] == "The API key is not valid."
    event = gateway.last("auth.invalid_credentials")
    assert event.fields["reason"] == reason
    assert key not in gateway.ecs_text()
    if reason == "wrong_secret":
        assert event.fields["consumer"] == "acme"  # whose key is being guessed at


async def test_a_revoked_key_is_refused(gateway: AuthGateway, keys: KeyManager) -> None:
    issued = keys.create("acme")
    gateway.refresh()
    assert (await get(gateway, "/rest", **{"x-api-key": issued.secret})).status_code == 200
    keys.revoke(issued.record.id)
    gateway.refresh()
    response = await get(gateway, "/rest", **{"x-api-key": issued.secret})
    assert response.status_code == 401
    event = gateway.last("auth.invalid_credentials")
    assert event.fields == {
        "reason": "revoked",
        "auth_method": "api_key",
        "key_id": issued.record.id,
        "consumer": "acme",
    }


async def test_expiry_and_the_near_expiry_warning(
    gateway: AuthGateway, keys: KeyManager, clock: FakeClock
) -> None:
    issued = keys.create("acme", expires_in=30 * DAY)
    gateway.refresh()
    key = {"x-api-key": issued.secret}
    assert (await get(gateway, "/rest", **key)).status_code == 200
    assert "auth.key_expiring" not in gateway.actions()
    clock.advance(16 * DAY + 1)  # inside the 14-day warning window
    assert (await get(gateway, "/rest", **key)).status_code == 200
    assert (await get(gateway, "/rest", **key)).status_code == 200
    warnings = [e for e in gateway.events.events if e.action == "auth.key_expiring"]
    assert len(warnings) == 1  # at most once an hour per key
    assert warnings[0].fields["key_id"] == issued.record.id
    assert warnings[0].fields["consumer"] == "acme"
    assert warnings[0].user_id == "acme"
    assert warnings[0].reason == "the API key expires in 14 days"
    clock.advance(3600)
    await get(gateway, "/rest", **key)
    assert gateway.actions().count("auth.key_expiring") == 2
    clock.advance(14 * DAY)
    response = await get(gateway, "/rest", **key)
    assert response.status_code == 401
    assert response.json()["code"] == "auth.expired_credentials"
    assert gateway.last("auth.expired_credentials").fields["key_id"] == issued.record.id


async def test_every_attempt_is_one_event_and_none_holds_the_secret(
    gateway: AuthGateway, keys: KeyManager
) -> None:
    good = keys.create("acme", scopes=("orders:read",))
    gateway.refresh()
    attempts = [
        ("/rest", {"x-api-key": good.secret}),
        ("/rest", {"x-api-key": good.secret[:-2] + "zz"}),
        ("/rest", {}),
        ("/admin", {"x-api-key": good.secret}),
        ("/rest?api_key=" + good.secret, {}),
    ]
    for path, headers in attempts:
        await get(gateway, path, **headers)
    assert gateway.actions() == [
        "auth.success",
        "auth.invalid_credentials",
        "auth.missing_credentials",
        "auth.success",
        "auth.insufficient_scope",
        "auth.credentials_in_query",
    ]
    text = gateway.ecs_text()
    assert good.secret not in text
    assert good.secret[17:49] not in text
    for event in gateway.events.events:
        assert event.request_id
        assert event.client_ip == "127.0.0.1"


async def test_last_use_is_written_in_batches_off_the_request_path(
    gateway: AuthGateway, keys: KeyManager, clock: FakeClock
) -> None:
    issued = keys.create("acme")
    gateway.refresh()
    await get(gateway, "/rest", **{"x-api-key": issued.secret})
    stored = keys.store.get(issued.record.id)
    assert stored is not None
    assert stored.last_used_at is None
    gateway.api_key.sync.flush()
    stored = keys.store.get(issued.record.id)
    assert stored is not None
    assert stored.last_used_at == clock.now


async def test_a_store_never_read_fails_closed(
    upstream: Upstream, hasher: KeyHasher, clock: FakeClock
) -> None:
    def unreachable() -> None:
        raise BackendUnavailable("PostgreSQL key store unavailable (OperationalError)")

    config = auth_config(upstream.url)
    gw = await start_auth_gateway(config, MemoryKeyStore(), hasher, clock, opener=unreachable)
    try:
        anonymous = await get(gw, "/x")
        assert anonymous.status_code == 401  # auto: an unknown key state means required
        keyed = await get(gw, "/x", **{"x-api-key": generate().secret})
        assert keyed.status_code == 503
        assert keyed.json()["code"] == "guard.unavailable"
        assert upstream.seen == []
    finally:
        await gw.close()
