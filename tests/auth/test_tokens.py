"""Tokens end to end: ``POST /oauth/token`` exchanges an API key for an RFC 9068 access token,
the ``bearer_token`` guard accepts it (and a provider's), ``/.well-known/jwks.json`` publishes the
keys. The real engine on a loopback port, keys made by the key manager, a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest

from bastion.auth.jwt import jose
from bastion.auth.jwt.keystore import MemorySigningKeyStore
from bastion.auth.keys.hashing import KeyHasher
from bastion.auth.keys.manager import KeyManager
from bastion.store import MemoryKeyStore
from tests.auth.helpers import DAY, AuthGateway, FakeClock
from tests.auth.tokens_helpers import (
    AUDIENCE,
    ISSUER,
    OTHER_AUDIENCE,
    basic,
    claims_of,
    get,
    request_token,
    token_config,
    token_for,
    token_gateway,
)
from tests.engine.upstream_app import Upstream


@pytest.fixture
def signing_store() -> MemorySigningKeyStore:
    return MemorySigningKeyStore()


@pytest.fixture
async def gateway(
    upstream: Upstream,
    memory_store: MemoryKeyStore,
    hasher: KeyHasher,
    clock: FakeClock,
    tmp_path: Path,
    signing_store: MemorySigningKeyStore,
) -> AsyncIterator[AuthGateway]:
    config = token_config(upstream, tmp_path)
    gw = await token_gateway(config, memory_store, hasher, clock, signing_store)
    yield gw
    await gw.close()


def seen_headers(response: httpx.Response) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, value in orjson.loads(response.content)["headers"]:
        found.setdefault(name, []).append(value)
    return found


async def test_client_credentials_with_basic_issue_an_rfc9068_token(
    gateway: AuthGateway, keys: KeyManager, clock: FakeClock
) -> None:
    issued = keys.create("billing", scopes=("orders:read", "orders:write"), tier="gold")
    gateway.refresh()
    response = await request_token(
        gateway, headers={"authorization": basic(issued.record.id, issued.secret)}
    )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    assert response.headers["content-type"] == "application/json"
    doc = response.json()
    assert doc["token_type"] == "Bearer"
    assert doc["expires_in"] == 300
    assert doc["scope"] == "orders:read orders:write"
    header, claims = claims_of(doc["access_token"])
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "EdDSA"
    assert claims["iss"] == ISSUER
    assert claims["sub"] == "billing"
    assert claims["aud"] == AUDIENCE
    assert claims["client_id"] == issued.record.id
    assert claims["iat"] == int(clock.now)
    assert claims["exp"] - claims["iat"] == 300
    assert claims["scope"] == "orders:read orders:write"
    assert claims["tier"] == "gold"
    assert len(claims["jti"]) >= 16
    event = gateway.last("auth.token_issued")
    assert event.fields["key_id"] == issued.record.id
    assert event.fields["jti"] == claims["jti"]
    assert event.fields["client_auth"] == "basic"
    assert issued.secret not in gateway.ecs_text()
    assert doc["access_token"] not in gateway.ecs_text()


@pytest.mark.parametrize("how", ["x-api-key", "authorization-apikey"])
async def test_client_credentials_with_the_api_key_header(
    gateway: AuthGateway, keys: KeyManager, how: str
) -> None:
    issued = keys.create("billing", scopes=("orders:read",))
    gateway.refresh()
    header = (
        {"x-api-key": issued.secret}
        if how == "x-api-key"
        else {"authorization": f"ApiKey {issued.secret}"}
    )
    response = await request_token(gateway, headers=header)
    assert response.status_code == 200, response.text
    assert claims_of(response.json()["access_token"])[1]["sub"] == "billing"
    assert gateway.last("auth.token_issued").fields["client_auth"] == "api_key"


async def test_requested_scopes_are_narrowed_and_the_resource_picks_the_audience(
    gateway: AuthGateway, keys: KeyManager
) -> None:
    issued = keys.create("billing", scopes=("orders:read", "orders:write"))
    gateway.refresh()
    response = await request_token(
        gateway,
        headers={"authorization": basic(issued.record.id, issued.secret)},
        data=f"grant_type=client_credentials&scope=orders%3Aread&resource={OTHER_AUDIENCE}",
    )
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "orders:read"
    claims = claims_of(response.json()["access_token"])[1]
    assert claims["scope"] == "orders:read"
    assert claims["aud"] == OTHER_AUDIENCE


async def test_form_encoded_basic_credentials_are_decoded(
    gateway: AuthGateway, keys: KeyManager
) -> None:
    issued = keys.create("billing")
    gateway.refresh()
    # RFC 6749 §2.3.1: client_id and secret are form-urlencoded before the Basic encoding.
    encoded = basic(issued.record.id, issued.secret.replace("_", "%5F"))
    response = await request_token(gateway, headers={"authorization": encoded})
    assert response.status_code == 200, response.text


async def test_token_lifetime_never_outlives_the_key(
    gateway: AuthGateway, keys: KeyManager, clock: FakeClock
) -> None:
    issued = keys.create("billing", expires_in=120)
    gateway.refresh()
    token = await token_for(gateway, issued.record.id, issued.secret)
    claims = claims_of(token)[1]
    assert claims["exp"] - claims["iat"] == 120


async def test_lifetime_is_never_more_than_the_configured_maximum(
    upstream: Upstream,
    memory_store: MemoryKeyStore,
    hasher: KeyHasher,
    clock: FakeClock,
    tmp_path: Path,
    keys: KeyManager,
) -> None:
    from bastion.config.loader import build_config
    from bastion.errors import ConfigError

    signing = {"issuer": ISSUER, "audiences": [AUDIENCE]}
    with pytest.raises(ConfigError, match="token_lifetime must not exceed max_token_lifetime"):
        build_config(
            {"auth": {"tokens": {"signing": {**signing, "token_lifetime": "15m",
                                             "max_token_lifetime": "10m"}}}},
            "test",
        )  # fmt: skip
    config = token_config(
        upstream,
        tmp_path,
        tokens={"signing": {**signing, "token_lifetime": "10m", "max_token_lifetime": "10m"}},
    )
    gw = await token_gateway(config, memory_store, hasher, clock)
    try:
        issued = keys.create("billing")
        gw.refresh()
        claims = claims_of(await token_for(gw, issued.record.id, issued.secret))[1]
        assert claims["exp"] - claims["iat"] == 600
    finally:
        await gw.close()


async def test_the_token_opens_routes_with_its_scopes(
    gateway: AuthGateway, keys: KeyManager, upstream: Upstream
) -> None:
    issued = keys.create("billing", scopes=("orders:read", "orders:write"), tier="gold")
    gateway.refresh()
    token = await token_for(gateway, issued.record.id, issued.secret, scope="orders:read")
    response = await get(gateway, "/orders/7", authorization=f"Bearer {token}")
    assert response.status_code == 200
    seen = seen_headers(response)
    assert seen["x-bastion-consumer"] == ["billing"]
    assert seen["x-bastion-auth-method"] == ["jwt"]
    assert seen["x-bastion-scopes"] == ["orders:read"]
    assert seen["x-bastion-tier"] == ["gold"]
    assert "authorization" not in seen  # the token is not forwarded
    event = gateway.last("auth.success")
    assert event.fields["auth_method"] == "jwt"
    assert event.fields["client_id"] == issued.record.id
    assert event.fields["issuer"] == ISSUER
    # The token carries orders:read only: writing needs orders:write.
    async with httpx.AsyncClient(base_url=gateway.base) as client:
        post = await client.post("/orders", headers={"authorization": f"Bearer {token}"})
    assert post.status_code == 403
    assert post.json()["code"] == "auth.insufficient_scope"
    assert post.headers["www-authenticate"] == (
        'Bearer realm="bastion", error="insufficient_scope", scope="orders:read orders:write"'
    )


async def test_a_missing_credential_is_challenged_for_keys_and_tokens(
    gateway: AuthGateway, keys: KeyManager
) -> None:
    keys.create("billing")
    gateway.refresh()
    response = await get(gateway, "/rest")
    assert response.status_code == 401
    assert response.headers.get_list("www-authenticate") == [
        'ApiKey realm="bastion"',
        'Bearer realm="bastion"',
    ]


@pytest.mark.parametrize(
    ("token", "code"),
    [("not.a.token", "auth.invalid_token"), ("", None)],
)
async def test_a_bad_bearer_token_is_401_with_an_rfc6750_challenge(
    gateway: AuthGateway, keys: KeyManager, token: str, code: str | None
) -> None:
    keys.create("billing")
    gateway.refresh()
    response = await get(gateway, "/health", authorization=f"Bearer {token}".strip())
    if code is None:  # "Bearer" alone is no credential: the public route lets it through
        assert response.status_code == 200
        return
    assert response.status_code == 401
    assert response.json()["code"] == code
    assert response.headers["www-authenticate"] == 'Bearer realm="bastion", error="invalid_token"'
    event = gateway.last(code)
    assert event.fields["auth_method"] == "bearer"
    assert token not in gateway.ecs_text()


async def test_an_expired_token_is_refused(
    gateway: AuthGateway, keys: KeyManager, clock: FakeClock
) -> None:
    issued = keys.create("billing", scopes=("orders:read",))
    gateway.refresh()
    token = await token_for(gateway, issued.record.id, issued.secret)
    clock.advance(300 + 31)  # past exp and the leeway
    response = await get(gateway, "/orders", authorization=f"Bearer {token}")
    assert response.status_code == 401
    assert response.json()["code"] == "auth.expired_token"


async def test_a_cached_token_is_not_verified_again(
    gateway: AuthGateway, keys: KeyManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    issued = keys.create("billing", scopes=("orders:read",))
    gateway.refresh()
    token = await token_for(gateway, issued.record.id, issued.secret)
    calls: list[str] = []
    real = jose.verify_signature

    def counting(*args: object, **kwargs: object) -> bool:
        calls.append("verify")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("bastion.auth.jwt.verifier.verify_signature", counting)
    for _ in range(5):
        response = await get(gateway, "/orders", authorization=f"Bearer {token}")
        assert response.status_code == 200
    assert calls == ["verify"]


async def test_a_payload_swapped_under_a_cached_tokens_signature_is_refused(
    gateway: AuthGateway, keys: KeyManager
) -> None:
    issued = keys.create("billing", scopes=("orders:read",))
    admin = keys.create("admin", scopes=("orders:read", "admin"))
    gateway.refresh()
    token = await token_for(gateway, issued.record.id, issued.secret)
    other = await token_for(gateway, admin.record.id, admin.secret)
    for _ in range(2):  # the second request is answered from the token cache
        assert (await get(gateway, "/orders", authorization=f"Bearer {token}")).status_code == 200
    head, _, signature = token.split(".")
    swapped = f"{head}.{other.split('.')[1]}.{signature}"  # a valid payload, the wrong signature
    response = await get(gateway, "/orders", authorization=f"Bearer {swapped}")
    assert response.status_code == 401
    assert response.json()["code"] == "auth.invalid_token"
    assert (await get(gateway, "/orders", authorization=f"Bearer {token}")).status_code == 200


async def test_the_token_endpoint_is_public_and_leaves_credentials_to_itself(
    gateway: AuthGateway, keys: KeyManager
) -> None:
    keys.create("billing")  # auth.default auto is now "required" everywhere else
    gateway.refresh()
    # A wrong key on the token endpoint is an RFC 6749 error, not the key guard's problem.
    response = await request_token(gateway, headers={"x-api-key": "bst_nope"})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["content-type"] == "application/json"
    assert (await get(gateway, "/.well-known/jwks.json")).status_code == 200


async def test_jwks_publishes_the_current_key_and_every_key_still_needed(
    gateway: AuthGateway, keys: KeyManager, clock: FakeClock
) -> None:
    issued = keys.create("billing")
    gateway.refresh()
    first = claims_of(await token_for(gateway, issued.record.id, issued.secret))[0]["kid"]
    response = await get(gateway, "/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/jwk-set+json"
    assert response.headers["cache-control"] == "public, max-age=300"
    assert [k["kid"] for k in response.json()["keys"]] == [first]
    assert set(response.json()["keys"][0]) == {"kty", "crv", "x", "kid", "alg", "use"}
    signing = gateway.bearer.signing
    assert signing is not None
    clock.advance(60)
    rotated = await signing.rotate()
    second = claims_of(await token_for(gateway, issued.record.id, issued.secret))[0]["kid"]
    assert second == rotated
    published = [k["kid"] for k in (await get(gateway, "/.well-known/jwks.json")).json()["keys"]]
    assert published == [rotated, first]  # the old key's tokens can still be valid
    clock.advance(3600 + 31)  # max_token_lifetime + leeway after the old key retired
    published = [k["kid"] for k in (await get(gateway, "/.well-known/jwks.json")).json()["keys"]]
    assert published == [rotated]
    post = await request_token(gateway, path="/.well-known/jwks.json")
    assert post.status_code == 405


async def test_tokens_signed_before_a_rotation_keep_working(
    gateway: AuthGateway, keys: KeyManager, clock: FakeClock
) -> None:
    issued = keys.create("billing", scopes=("orders:read",))
    gateway.refresh()
    token = await token_for(gateway, issued.record.id, issued.secret)
    signing = gateway.bearer.signing
    assert signing is not None
    clock.advance(10)
    await signing.rotate()
    assert (await get(gateway, "/orders", authorization=f"Bearer {token}")).status_code == 200
    clock.advance(10)
    await signing.rotate(revoke_previous=True)  # a compromised key: its tokens die with it
    response = await get(gateway, "/orders", authorization=f"Bearer {token}")
    assert response.status_code == 401
    assert response.json()["code"] == "auth.invalid_token"


async def test_a_rotated_keys_tokens_live_until_its_grace_ends(
    gateway: AuthGateway, keys: KeyManager, clock: FakeClock
) -> None:
    issued = keys.create("billing", scopes=("orders:read",))
    gateway.refresh()
    token = await token_for(gateway, issued.record.id, issued.secret)
    keys.rotate(issued.record.id, grace=60)
    gateway.refresh()
    assert (await get(gateway, "/orders", authorization=f"Bearer {token}")).status_code == 200
    clock.advance(61)
    response = await get(gateway, "/orders", authorization=f"Bearer {token}")
    assert response.status_code == 401
    assert response.json()["code"] == "auth.revoked_token"


async def test_tokens_do_not_open_a_gateway_whose_keys_cannot_be_read(
    upstream: Upstream, hasher: KeyHasher, clock: FakeClock, tmp_path: Path
) -> None:
    # The key store never loads: bastion's tokens cannot be judged, so the answer is 503.
    def broken() -> tuple[MemoryKeyStore, KeyHasher]:
        raise OSError("disk gone")

    from tests.auth.helpers import start_auth_gateway

    config = token_config(upstream, tmp_path)
    gw = await start_auth_gateway(
        config,
        MemoryKeyStore(),
        hasher,
        clock,
        opener=broken,  # type: ignore[arg-type]
        signing_store=MemorySigningKeyStore(),
    )
    try:
        signing = gw.bearer.signing
        assert signing is not None
        forged = signing.issue_access_token(
            subject="x", client_id="AAAAAAAAAAAA", audience=AUDIENCE
        )
        response = await get(gw, "/health", authorization=f"Bearer {forged.token}")
        assert response.status_code == 503
        assert response.json()["code"] == "guard.unavailable"
    finally:
        await gw.close()


async def test_signing_keys_persist_in_state_dir_files_by_default(
    upstream: Upstream,
    memory_store: MemoryKeyStore,
    hasher: KeyHasher,
    clock: FakeClock,
    tmp_path: Path,
) -> None:
    from tests.auth.helpers import start_auth_gateway

    config = token_config(upstream, tmp_path / "state")
    gw = await start_auth_gateway(config, memory_store, hasher, clock)
    try:
        files = list((tmp_path / "state" / "signing-keys").glob("*.json"))
        assert len(files) == 1
        assert files[0].stat().st_mode & 0o777 == 0o600
    finally:
        await gw.close()


async def test_the_key_expiring_leaves_no_token_usable(
    gateway: AuthGateway, keys: KeyManager, clock: FakeClock
) -> None:
    issued = keys.create("billing", scopes=("orders:read",), expires_in=DAY)
    gateway.refresh()
    clock.advance(DAY - 100)
    token = await token_for(gateway, issued.record.id, issued.secret)
    assert claims_of(token)[1]["exp"] == int(clock.now) + 100
    clock.advance(101)  # the key expired; the token's exp has passed but not its leeway
    response = await get(gateway, "/orders", authorization=f"Bearer {token}")
    assert response.status_code == 401
