"""bastion against a real OpenID Connect provider: discovery, JWKS, its tokens, refetch on an
unknown kid (single-flight, cooldown), stale keys while it is down."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from bastion.auth.jwt import (
    INVALID_TOKEN,
    KEYS_UNAVAILABLE,
    IssuerSettings,
    TokenError,
    TokenSettings,
    VerifiedToken,
    build_verifier,
)
from bastion.auth.jwt.claims import ClaimsPolicy
from bastion.auth.jwt.jwks import IssuerKeys
from bastion.auth.jwt.verifier import Issuer, TokenVerifier
from tests.auth.oidc.conftest import CLIENT_ID, RESOURCES, Provider

ALGS = ("ES256", "EdDSA", "RS256", "PS256")


class FakeClock:
    """Monotonic time that moves only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False, timeout=10.0) as http:
        yield http


def verifier_for(
    provider: Provider,
    client: httpx.AsyncClient,
    *,
    clock: Callable[[], float] = time.monotonic,
    algorithms: tuple[str, ...] = ALGS,
    **options: float,
) -> tuple[TokenVerifier, IssuerKeys]:
    keys = IssuerKeys(
        provider.issuer,
        algorithms=frozenset(algorithms),
        client=client,
        allow_http=True,
        clock=clock,
        **options,  # type: ignore[arg-type]
    )
    policy = ClaimsPolicy(
        provider.issuer,
        frozenset(RESOURCES.values()),
        token_type="at+jwt",
        required=frozenset({"sub", "jti", "client_id", "iat"}),
        max_lifetime=3600,
    )
    return TokenVerifier([Issuer(policy, frozenset(algorithms), keys)]), keys


async def test_discovery_finds_the_jwks_and_its_keys(
    provider: Provider, client: httpx.AsyncClient
) -> None:
    _, keys = verifier_for(provider, client)
    assert await keys.refresh()
    assert keys.jwks_uri == provider.issuer + "/jwks"
    algs = {alg for key in keys.keys for alg in key.algorithms}
    assert algs == set(ALGS)
    assert all(key.kid for key in keys.keys)


async def test_discovery_naming_another_issuer_is_refused(
    provider: Provider, client: httpx.AsyncClient
) -> None:
    """The configured issuer must be the one the document names (OIDC Discovery §4.3)."""
    impostor = provider.issuer.replace("127.0.0.1", "localhost")
    keys = IssuerKeys(
        impostor,
        algorithms=frozenset(ALGS),
        client=client,
        allow_http=True,
        discovery_url=provider.issuer + "/.well-known/openid-configuration",
    )
    assert not await keys.refresh()
    assert keys.fetched_at is None
    assert len(keys.keys) == 0


async def test_plain_http_issuer_needs_allow_http() -> None:
    with pytest.raises(ValueError, match="https"):
        IssuerKeys("http://127.0.0.1:1", algorithms=frozenset({"ES256"}))


async def test_allowlist_limits_the_keys_taken_from_the_jwks(
    provider: Provider, client: httpx.AsyncClient
) -> None:
    verifier, keys = verifier_for(provider, client, algorithms=("EdDSA",))
    assert await keys.refresh()
    assert {alg for key in keys.keys for alg in key.algorithms} == {"EdDSA"}
    result = await verifier.verify(provider.token("ES256"))
    assert isinstance(result, TokenError)
    assert result.reason == "alg is not allowed for this issuer"
    assert isinstance(await verifier.verify(provider.token("EdDSA")), VerifiedToken)


@pytest.mark.parametrize("alg", ALGS)
async def test_provider_tokens_verify(
    provider: Provider, client: httpx.AsyncClient, alg: str
) -> None:
    verifier, keys = verifier_for(provider, client)
    await keys.refresh()
    token = provider.token(alg, scope="read write")
    result = await verifier.verify(token)
    assert isinstance(result, VerifiedToken), result
    assert result.header["alg"] == alg
    assert result.header["typ"] == "at+jwt"
    assert result.identity.consumer == CLIENT_ID
    assert result.identity.method == "oidc"
    assert result.identity.key_id == result.claims["jti"]
    assert result.identity.scopes == {"read", "write"}
    assert result.claims["aud"] == RESOURCES[alg]
    # cached: the same object, no signature check
    assert verifier.verify_nowait(token) is result


async def test_tampered_provider_token_refused(
    provider: Provider, client: httpx.AsyncClient
) -> None:
    verifier, keys = verifier_for(provider, client)
    await keys.refresh()
    head, _, sig = provider.token("RS256").split(".")
    other = provider.token("RS256", scope="read write admin").split(".")[1]
    result = await verifier.verify(f"{head}.{other}.{sig}")
    assert isinstance(result, TokenError)
    assert (result.code, result.reason) == (INVALID_TOKEN, "signature does not verify")


async def test_verifier_from_settings_against_the_provider(provider: Provider) -> None:
    settings = TokenSettings(
        issuers=[
            IssuerSettings(
                issuer=provider.issuer,
                audiences=[RESOURCES["EdDSA"]],
                algorithms=["EdDSA"],
                token_type="at+jwt",
                allow_http=True,
            )
        ]
    )
    verifier = build_verifier(settings)
    await verifier.start()
    try:
        result = verifier.verify_nowait(provider.token("EdDSA"))
        assert isinstance(result, VerifiedToken)
        wrong_audience = await verifier.verify(provider.token("ES256"))
        assert isinstance(wrong_audience, TokenError)
    finally:
        await verifier.aclose()


async def test_unknown_kid_refetch_is_single_flight(
    provider: Provider, client: httpx.AsyncClient
) -> None:
    clock = FakeClock()
    verifier, keys = verifier_for(provider, client, clock=clock)
    assert await keys.refresh()
    provider.rotate()
    tokens = [provider.token(alg) for alg in ALGS for _ in range(5)]
    assert all(verifier.verify_nowait(token) is None for token in tokens)  # new kids: must look
    before_server, before_client = provider.stats()["jwks_requests"], keys.fetches
    clock.advance(keys.refetch_cooldown)
    results = await asyncio.gather(*(verifier.verify(token) for token in tokens))
    assert all(isinstance(result, VerifiedToken) for result in results), results
    assert provider.stats()["jwks_requests"] - before_server == 1
    assert keys.fetches - before_client == 1


async def test_unknown_kid_within_cooldown_is_not_refetched(
    provider: Provider, client: httpx.AsyncClient
) -> None:
    clock = FakeClock()
    verifier, keys = verifier_for(provider, client, clock=clock)
    assert await keys.refresh()
    provider.rotate()
    token = provider.token("ES256")
    before = provider.stats()["jwks_requests"]
    result = await verifier.verify(token)  # rotated right after our fetch: within the cooldown
    assert isinstance(result, TokenError)
    assert result.reason == "kid does not name a key of the issuer"
    assert provider.stats()["jwks_requests"] == before
    clock.advance(keys.refetch_cooldown)
    assert isinstance(await verifier.verify(token), VerifiedToken)
    assert provider.stats()["jwks_requests"] == before + 1


async def test_provider_down_serves_stale_keys_within_max_stale(
    own_provider: Provider, client: httpx.AsyncClient
) -> None:
    clock = FakeClock()
    verifier, keys = verifier_for(own_provider, client, clock=clock, max_stale=3600.0)
    assert await keys.refresh()
    tokens = [own_provider.token(alg) for alg in ALGS]
    own_provider.stop()
    clock.advance(600)
    assert not await keys.refresh()  # the provider is down: the last keys stay
    for token in tokens:
        assert isinstance(await verifier.verify(token), VerifiedToken)
    verifier.cache.clear()
    clock.advance(3600 - 600)
    assert isinstance(verifier.verify_nowait(tokens[0]), VerifiedToken)  # exactly max_stale
    clock.advance(1)
    result = await verifier.verify(tokens[1])
    assert isinstance(result, TokenError)
    assert result.code == KEYS_UNAVAILABLE
    assert result.deny().status == 503
    own_provider.start()  # back, with new keys (it generates them at start)
    assert await keys.refresh()
    assert isinstance(await verifier.verify(own_provider.token("EdDSA")), VerifiedToken)


async def test_first_fetch_failing_gives_keys_unavailable(client: httpx.AsyncClient) -> None:
    from tests.ports import free_port

    issuer = f"http://127.0.0.1:{free_port()}"  # nobody listens
    keys = IssuerKeys(issuer, algorithms=frozenset({"ES256"}), client=client, allow_http=True)
    policy = ClaimsPolicy(issuer, frozenset({"api"}))
    verifier = TokenVerifier([Issuer(policy, frozenset({"ES256"}), keys)])
    assert not await keys.refresh()
    from tests.auth.jwt import forge

    token = forge.token(forge.claims(iss=issuer), key=forge.private_for("ES256"), alg="ES256")
    result = await verifier.verify(token)
    assert isinstance(result, TokenError)
    assert result.code == KEYS_UNAVAILABLE
    assert keys.fetches == 0  # discovery failed: no JWKS request went out


async def test_background_refresh_keeps_keys_fresh_and_retries_sooner_after_failure(
    own_provider: Provider, client: httpx.AsyncClient
) -> None:
    delays: asyncio.Queue[float] = asyncio.Queue()
    gate = asyncio.Event()

    async def sleep(seconds: float) -> None:
        await delays.put(seconds)
        await gate.wait()
        gate.clear()

    keys = IssuerKeys(
        own_provider.issuer,
        algorithms=frozenset(ALGS),
        client=client,
        allow_http=True,
        refresh_interval=900.0,
        retry_interval=20.0,
        sleep=sleep,
    )
    assert await keys.start()
    try:
        assert await delays.get() == 900.0
        first = keys.keys.identities()
        own_provider.rotate()
        gate.set()
        assert await delays.get() == 900.0
        assert keys.keys.identities() > first  # the rotated keys were picked up
        own_provider.stop()
        gate.set()
        assert await delays.get() == 20.0  # failed: try again sooner, keep the keys
        assert keys.keys.identities() > first
        own_provider.start()
        gate.set()
        assert await delays.get() == 900.0
    finally:
        await keys.aclose()
