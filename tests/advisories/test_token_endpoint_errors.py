"""Advisory: the token endpoint's refusals follow RFC 6749 §5.2, one named test per error.

A token endpoint that is lax about how clients authenticate (a secret in the URL or the body, a
bearer token as client credentials, a ``client_id`` that is not the key's) or about what it
grants (scopes beyond the key's, any grant type) hands out access it should not. Every refusal
is a JSON document with ``error`` and a fixed ``error_description`` (never client input),
``Cache-Control: no-store``, and a security event without the key.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bastion.auth.keys.hashing import KeyHasher
from bastion.auth.keys.manager import IssuedKey, KeyManager
from bastion.config.loader import build_config
from bastion.observability.events import MemorySink
from bastion.ratelimit.assembly import ratelimit_guards
from bastion.store import MemoryKeyStore
from tests.auth.helpers import PEPPER, AuthGateway, FakeClock, start_auth_gateway
from tests.auth.tokens_helpers import basic, request_token, token_config
from tests.engine.upstream_app import Upstream


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store() -> MemoryKeyStore:
    return MemoryKeyStore()


@pytest.fixture
def keys(store: MemoryKeyStore, clock: FakeClock) -> KeyManager:
    return KeyManager(build_config({}, "t"), clock=clock, store=store, hasher=KeyHasher(PEPPER))


@pytest.fixture
def issued(keys: KeyManager) -> IssuedKey:
    return keys.create("billing", scopes=("orders:read",))


async def start(
    upstream: Upstream, store: MemoryKeyStore, clock: FakeClock, tmp_path: Path, **auth: object
) -> AuthGateway:
    from bastion.auth.jwt.keystore import MemorySigningKeyStore

    config = token_config(upstream, tmp_path, **auth)
    gateway = await start_auth_gateway(
        config, store, KeyHasher(PEPPER), clock, signing_store=MemorySigningKeyStore()
    )
    gateway.refresh()
    return gateway


@pytest.fixture
async def gateway(
    upstream: Upstream, store: MemoryKeyStore, clock: FakeClock, tmp_path: Path, issued: IssuedKey
) -> AsyncIterator[AuthGateway]:
    gw = await start(upstream, store, clock, tmp_path)
    yield gw
    await gw.close()


def assert_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    doc = response.json()
    assert doc["error"] == error
    assert set(doc) == {"error", "error_description"}
    assert "access_token" not in response.text


def auth_of(issued: IssuedKey) -> dict[str, str]:
    return {"authorization": basic(issued.record.id, issued.secret)}


# -- invalid_client (401, with a challenge for the scheme the client used)


async def test_no_client_authentication_is_invalid_client(gateway: AuthGateway) -> None:
    response = await request_token(gateway)
    assert_error(response, 401, "invalid_client")
    assert response.headers["www-authenticate"] == 'Basic realm="bastion"'
    assert gateway.last("auth.token_refused").fields["reason"] == "no_client_authentication"


async def test_wrong_client_secret_is_invalid_client(
    gateway: AuthGateway, issued: IssuedKey
) -> None:
    from bastion.auth.keys.format import checksum, generate

    body = issued.secret[:17] + generate().secret[17:49]  # the real id, another secret
    forged = body + checksum(body)
    response = await request_token(
        gateway, headers={"authorization": basic(issued.record.id, forged)}
    )
    assert_error(response, 401, "invalid_client")
    assert response.headers["www-authenticate"] == 'Basic realm="bastion"'
    event = gateway.last("auth.token_refused")
    assert event.fields["reason"] == "wrong_secret"
    assert event.fields["key_id"] == issued.record.id
    assert forged not in gateway.ecs_text()


async def test_unknown_client_is_invalid_client(gateway: AuthGateway) -> None:
    from bastion.auth.keys.format import generate

    stranger = generate()
    response = await request_token(
        gateway, headers={"authorization": basic(stranger.id, stranger.secret)}
    )
    assert_error(response, 401, "invalid_client")
    assert gateway.last("auth.token_refused").fields["reason"] == "unknown_key"


async def test_malformed_basic_credentials_are_invalid_client(gateway: AuthGateway) -> None:
    for value in ("Basic !!!notbase64", "Basic " + "dXNlcm9ubHk=", "Basic Og=="):
        response = await request_token(gateway, headers={"authorization": value})
        assert_error(response, 401, "invalid_client")
        assert response.headers["www-authenticate"] == 'Basic realm="bastion"'


async def test_client_id_that_is_not_the_keys_is_invalid_client(
    gateway: AuthGateway, issued: IssuedKey
) -> None:
    response = await request_token(
        gateway, headers={"authorization": basic("AAAAAAAAAAAA", issued.secret)}
    )
    assert_error(response, 401, "invalid_client")
    assert gateway.last("auth.token_refused").fields["reason"] == "client_id_mismatch"
    body_id = await request_token(
        gateway,
        headers={"x-api-key": issued.secret},
        data="grant_type=client_credentials&client_id=AAAAAAAAAAAA",
    )
    assert_error(body_id, 401, "invalid_client")
    assert body_id.headers["www-authenticate"] == 'ApiKey realm="bastion"'


async def test_bearer_token_as_client_authentication_is_invalid_client(
    gateway: AuthGateway,
) -> None:
    response = await request_token(gateway, headers={"authorization": "Bearer abc.def.ghi"})
    assert_error(response, 401, "invalid_client")


async def test_bad_api_key_header_is_invalid_client_not_a_problem_document(
    gateway: AuthGateway,
) -> None:
    response = await request_token(gateway, headers={"x-api-key": "bst_not_a_key"})
    assert_error(response, 401, "invalid_client")
    assert response.headers["www-authenticate"] == 'ApiKey realm="bastion"'


# -- invalid_grant


async def test_revoked_key_is_invalid_grant(
    gateway: AuthGateway, keys: KeyManager, issued: IssuedKey
) -> None:
    keys.revoke(issued.record.id)
    gateway.refresh()
    response = await request_token(gateway, headers=auth_of(issued))
    assert_error(response, 400, "invalid_grant")
    assert gateway.last("auth.token_refused").fields["reason"] == "revoked"


async def test_expired_key_is_invalid_grant(
    gateway: AuthGateway, issued: IssuedKey, clock: FakeClock
) -> None:
    clock.now = issued.record.expires_at + 1
    response = await request_token(gateway, headers=auth_of(issued))
    assert_error(response, 400, "invalid_grant")
    assert gateway.last("auth.token_refused").fields["reason"] == "expired"


# -- unauthorized_client


async def test_key_without_the_required_scope_is_unauthorized_client(
    upstream: Upstream,
    store: MemoryKeyStore,
    clock: FakeClock,
    tmp_path: Path,
    keys: KeyManager,
    issued: IssuedKey,
) -> None:
    gw = await start(
        upstream, store, clock, tmp_path, tokens={"endpoint": {"required_scope": "tokens"}}
    )
    try:
        assert_error(await request_token(gw, headers=auth_of(issued)), 400, "unauthorized_client")
        allowed = keys.create("service", scopes=("tokens", "orders:read"))
        gw.refresh()
        assert (await request_token(gw, headers=auth_of(allowed))).status_code == 200
    finally:
        await gw.close()


# -- unsupported_grant_type


@pytest.mark.parametrize("grant", ["password", "authorization_code", "refresh_token", "implicit"])
async def test_grant_types_other_than_client_credentials_are_unsupported(
    gateway: AuthGateway, issued: IssuedKey, grant: str
) -> None:
    response = await request_token(gateway, headers=auth_of(issued), data=f"grant_type={grant}")
    assert_error(response, 400, "unsupported_grant_type")


# -- invalid_scope


async def test_scope_beyond_the_keys_is_invalid_scope(
    gateway: AuthGateway, issued: IssuedKey
) -> None:
    response = await request_token(
        gateway, headers=auth_of(issued), data="grant_type=client_credentials&scope=admin"
    )
    assert_error(response, 400, "invalid_scope")
    assert gateway.last("auth.token_refused").fields["reason"] == "scope_not_granted"


@pytest.mark.parametrize("scope", ["", "orders:read%20%20admin", "%22quoted%22", "a%0Ab"])
async def test_malformed_scope_is_invalid_scope(
    gateway: AuthGateway, issued: IssuedKey, scope: str
) -> None:
    response = await request_token(
        gateway, headers=auth_of(issued), data=f"grant_type=client_credentials&scope={scope}"
    )
    assert_error(response, 400, "invalid_scope")


# -- invalid_request


async def test_missing_grant_type_is_invalid_request(
    gateway: AuthGateway, issued: IssuedKey
) -> None:
    assert_error(await request_token(gateway, headers=auth_of(issued), data=""), 400,
                 "invalid_request")  # fmt: skip


async def test_repeated_parameter_is_invalid_request(
    gateway: AuthGateway, issued: IssuedKey
) -> None:
    response = await request_token(
        gateway,
        headers=auth_of(issued),
        data="grant_type=client_credentials&scope=orders%3Aread&scope=admin",
    )
    assert_error(response, 400, "invalid_request")
    assert "scope" not in response.json()["error_description"]  # no client input echoed


async def test_json_body_is_invalid_request(gateway: AuthGateway, issued: IssuedKey) -> None:
    async with httpx.AsyncClient(base_url=gateway.base) as client:
        response = await client.post(
            "/oauth/token", headers=auth_of(issued), json={"grant_type": "client_credentials"}
        )
    assert_error(response, 400, "invalid_request")


async def test_get_is_refused(gateway: AuthGateway, issued: IssuedKey) -> None:
    response = await request_token(gateway, headers=auth_of(issued), method="GET")
    assert_error(response, 405, "invalid_request")
    assert response.headers["allow"] == "POST"


async def test_parameters_in_the_query_string_are_invalid_request(
    gateway: AuthGateway, issued: IssuedKey
) -> None:
    response = await request_token(
        gateway, headers=auth_of(issued), path="/oauth/token?grant_type=client_credentials"
    )
    assert_error(response, 400, "invalid_request")


async def test_client_secret_in_the_query_is_refused_before_anything(
    gateway: AuthGateway, issued: IssuedKey, upstream: Upstream
) -> None:
    response = await request_token(gateway, path=f"/oauth/token?client_secret={issued.secret}")
    assert response.status_code == 400
    assert response.json()["code"] == "auth.credentials_in_query"
    assert issued.secret not in response.text
    assert issued.secret not in gateway.ecs_text()
    assert "auth.token_issued" not in gateway.actions()


async def test_client_secret_in_the_body_is_invalid_request(
    gateway: AuthGateway, issued: IssuedKey
) -> None:
    response = await request_token(
        gateway,
        data=f"grant_type=client_credentials&client_id={issued.record.id}"
        f"&client_secret={issued.secret}",
    )
    assert_error(response, 400, "invalid_request")
    assert gateway.last("auth.token_refused").fields["reason"] == "client_secret_in_body"
    assert issued.secret not in gateway.ecs_text()


async def test_unknown_resource_is_invalid_target(gateway: AuthGateway, issued: IssuedKey) -> None:
    response = await request_token(
        gateway,
        headers=auth_of(issued),
        data="grant_type=client_credentials&resource=https%3A%2F%2Fevil.example",
    )
    assert_error(response, 400, "invalid_target")


async def test_two_client_authentications_are_refused_as_ambiguous(
    gateway: AuthGateway, issued: IssuedKey
) -> None:
    response = await request_token(gateway, headers={**auth_of(issued), "x-api-key": issued.secret})
    assert response.status_code == 400
    assert response.json()["code"] == "auth.ambiguous_credentials"


# -- the login lockout guards the endpoint


async def test_failed_client_authentication_counts_toward_the_login_lockout(
    upstream: Upstream, store: MemoryKeyStore, clock: FakeClock, tmp_path: Path, issued: IssuedKey
) -> None:
    from bastion.auth.jwt.keystore import MemorySigningKeyStore

    config = token_config(upstream, tmp_path)
    events = MemorySink()
    gw = await start_auth_gateway(
        config,
        store,
        KeyHasher(PEPPER),
        clock,
        signing_store=MemorySigningKeyStore(),
        extra_guards=ratelimit_guards(config, events),
    )
    gw.refresh()
    try:
        last = "1" if issued.secret.endswith("0") else "0"  # a key ending in 0 stayed right
        wrong = {"authorization": basic(issued.record.id, issued.secret[:-1] + last)}
        statuses = [(await request_token(gw, headers=wrong)).status_code for _ in range(6)]
        assert statuses == [401] * 5 + [429]
        locked = await request_token(gw, headers=auth_of(issued))
        assert locked.status_code == 429  # the account is locked, even with the right key
        assert locked.json()["code"] == "ratelimit.login_locked"
    finally:
        await gw.close()


async def test_an_oversized_body_is_invalid_request(
    gateway: AuthGateway, issued: IssuedKey
) -> None:
    response = await request_token(
        gateway,
        headers=auth_of(issued),
        data="grant_type=client_credentials&padding=" + "x" * 5000,
    )
    assert_error(response, 400, "invalid_request")
    assert gateway.last("auth.token_refused").fields["reason"] == "body_too_large"
