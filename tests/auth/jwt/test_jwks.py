"""IssuerKeys' fetching rules, with httpx's mock transport standing in for odd providers (the
real provider is in tests/auth/oidc)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from bastion.auth.jwt import TokenError, TokenVerifier, VerifiedToken
from bastion.auth.jwt.claims import ClaimsPolicy
from bastion.auth.jwt.jwks import IssuerKeys
from bastion.auth.jwt.verifier import Issuer
from tests.auth.jwt import forge
from tests.auth.jwt.forge import AUDIENCE, ISSUER, NOW

DISCOVERY = {"issuer": ISSUER, "jwks_uri": ISSUER + "/jwks"}
Handler = Callable[[httpx.Request], httpx.Response]


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def provider(jwks: Any = None, discovery: Any = None, **responses: httpx.Response) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path in responses:
            return responses[path]
        if path.endswith("openid-configuration"):
            return httpx.Response(200, json=DISCOVERY if discovery is None else discovery)
        return httpx.Response(200, json=forge.jwks_of(("k1", "EdDSA")) if jwks is None else jwks)

    return handle


async def refresh_with(handler: Handler, **options: Any) -> IssuerKeys:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    keys = IssuerKeys(ISSUER, algorithms=frozenset({"EdDSA", "ES256"}), client=client, **options)
    await keys.refresh()
    await client.aclose()
    return keys


async def test_discovery_then_jwks() -> None:
    keys = await refresh_with(provider())
    assert keys.fetched_at is not None
    assert keys.jwks_uri == ISSUER + "/jwks"
    assert keys.fetches == 1
    assert set(keys.keys.by_kid) == {"k1"}


async def test_configured_jwks_uri_skips_discovery() -> None:
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return provider()(request)

    await refresh_with(handle, jwks_uri=ISSUER + "/keys")
    assert seen == ["/keys"]


@pytest.mark.parametrize(
    "handler",
    [
        provider(**{"/jwks": httpx.Response(500)}),
        provider(**{"/jwks": httpx.Response(302, headers={"location": "https://evil.example/"})}),
        provider(**{"/jwks": httpx.Response(200, content=b"not json")}),
        provider(**{"/jwks": httpx.Response(200, content=b"x" * 300_000)}),
        provider(jwks={"keys": "nope"}),
        provider(jwks={"keys": [{"kty": "oct", "k": "AAAA"}]}),
        provider(jwks={"keys": [forge.jwks_of(("k1", "EdDSA"))["keys"][0]] * 65}),
        provider(discovery={"issuer": "https://other.example", "jwks_uri": ISSUER + "/jwks"}),
        provider(discovery={"issuer": ISSUER, "jwks_uri": "http://idp.example.test/jwks"}),
        provider(discovery={"issuer": ISSUER}),
    ],
    ids=[
        "http-500",
        "redirect",
        "not-json",
        "too-large",
        "keys-not-a-list",
        "no-usable-key",
        "too-many-keys",
        "other-issuer",
        "plain-http-jwks",
        "no-jwks-uri",
    ],
)
async def test_bad_provider_answers_keep_no_keys(handler: Handler) -> None:
    keys = await refresh_with(handler)
    assert keys.fetched_at is None
    assert len(keys.keys) == 0


async def test_unusable_keys_are_skipped_and_the_rest_kept() -> None:
    good = forge.jwks_of(("k1", "EdDSA"), ("k2", "RS256"))["keys"]  # RS256: not in allowlist
    bad = [{"kty": "oct", "k": "AAAA"}, {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]
    keys = await refresh_with(provider(jwks={"keys": good + bad}))
    assert set(keys.keys.by_kid) == {"k1"}


async def test_a_key_leaving_the_set_undoes_cached_verifications() -> None:
    """A cached token signed by a key the provider withdrew is verified again, and refused."""
    current = {"jwks": forge.jwks_of(("k1", "EdDSA"), ("k2", "ES256"))}

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("openid-configuration"):
            return httpx.Response(200, json=DISCOVERY)
        return httpx.Response(200, json=current["jwks"])

    clock = Clock()
    async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
        keys = IssuerKeys(
            ISSUER, algorithms=frozenset({"EdDSA", "ES256"}), client=client, clock=clock
        )
        await keys.refresh()
        verifier = TokenVerifier(
            [
                Issuer(
                    ClaimsPolicy(ISSUER, frozenset({AUDIENCE})), frozenset({"EdDSA", "ES256"}), keys
                )
            ]
        )
        token = forge.token(forge.claims(), key=forge.private_for("EdDSA"), alg="EdDSA", kid="k1")
        other = forge.token(forge.claims(), key=forge.private_for("ES256"), alg="ES256", kid="k2")
        assert isinstance(verifier.verify_nowait(token, NOW), VerifiedToken)
        assert isinstance(verifier.verify_nowait(other, NOW), VerifiedToken)
        revision = keys.revision
        current["jwks"] = forge.jwks_of(("k2", "ES256"))
        clock.now += 3600
        await keys.refresh()
        assert keys.revision == revision + 1
        result = await verifier.verify(token, NOW)
        assert isinstance(result, TokenError)
        assert result.reason == "kid does not name a key of the issuer"
        assert isinstance(verifier.verify_nowait(other, NOW), VerifiedToken)  # re-verified, kept


async def test_own_client_is_closed() -> None:
    keys = IssuerKeys(ISSUER, algorithms=frozenset({"EdDSA"}), fetch_timeout=0.5)
    await keys.aclose()  # nothing was opened
    assert keys._client is None
