"""The verifier façade: identity mapping, the cached path, refusals as values and as denials."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.auth.jwt import (
    EXPIRED_TOKEN,
    INVALID_TOKEN,
    KEYS_UNAVAILABLE,
    REVOKED_TOKEN,
    TokenError,
    TokenVerifier,
    VerifiedToken,
)
from tests.auth.jwt import forge
from tests.auth.jwt.forge import NOW


def signed(**claims: Any) -> str:
    return forge.token(
        forge.claims(**claims), key=forge.private_for("EdDSA"), alg="EdDSA", kid="k1"
    )


def test_identity_comes_from_the_claims() -> None:
    result = forge.verifier().verify_nowait(signed(scope="read  write"), NOW)
    assert isinstance(result, VerifiedToken)
    identity = result.identity
    assert (identity.consumer, identity.method, identity.key_id) == ("alice", "oidc", "jti-1")
    assert identity.scopes == {"read", "write"}
    assert identity.claims["client_id"] == "app-1"
    assert result.expires_at == NOW + 300
    assert result.subject == "alice"
    assert result.jti == "jti-1"
    assert result.kid == "k1"


def test_client_id_is_the_consumer_without_sub_and_scp_gives_scopes() -> None:
    result = forge.verifier().verify_nowait(signed(sub=None, scope=None, scp=["a", "b"]), NOW)
    assert isinstance(result, VerifiedToken)
    assert result.identity.consumer == "app-1"
    assert result.identity.scopes == {"a", "b"}
    result = forge.verifier().verify_nowait(signed(scope=None, scp="x y"), NOW)
    assert isinstance(result, VerifiedToken)
    assert result.identity.scopes == {"x", "y"}


def test_token_naming_nobody_is_refused() -> None:
    result = forge.verifier().verify_nowait(signed(sub=None, client_id=None), NOW)
    assert isinstance(result, TokenError)
    assert result.reason == "token names no subject or client_id"


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"sub": 42}, "sub is not a non-empty string"),
        ({"jti": ""}, "jti is not a non-empty string"),
        ({"scope": ["read"]}, "scope is not a string"),
        ({"scp": [1]}, "scp is not a string or a list of strings"),
    ],
)
def test_claim_types_are_checked(claims: dict[str, object], reason: str) -> None:
    result = forge.verifier().verify_nowait(signed(**claims), NOW)
    assert isinstance(result, TokenError)
    assert result.reason == reason


def test_cached_answer_is_the_same_object_and_read_only() -> None:
    verifier = forge.verifier()
    token = signed()
    first = verifier.verify_nowait(token, NOW)
    assert isinstance(first, VerifiedToken)
    assert verifier.verify_nowait(token, NOW + 10) is first
    with pytest.raises(TypeError):
        first.claims["sub"] = "admin"  # type: ignore[index]


def test_failures_are_not_cached() -> None:
    verifier = forge.verifier()
    verifier.verify_nowait(signed(aud="other"), NOW)
    assert len(verifier.cache) == 0


def test_uses_its_clock_when_no_time_is_given() -> None:
    verifier = forge.verifier(clock=lambda: NOW + 10_000)
    result = verifier.verify_nowait(signed())
    assert isinstance(result, TokenError)
    assert result.code == EXPIRED_TOKEN


def test_issuers_are_unique() -> None:
    issuer = forge.verifier().issuers[forge.ISSUER]
    with pytest.raises(ValueError, match="once"):
        TokenVerifier([issuer, issuer])


@pytest.mark.parametrize(
    ("code", "status", "challenge"),
    [
        (INVALID_TOKEN, 401, 'Bearer realm="api", error="invalid_token"'),
        (EXPIRED_TOKEN, 401, 'Bearer realm="api", error="invalid_token"'),
        (REVOKED_TOKEN, 401, 'Bearer realm="api", error="invalid_token"'),
        (KEYS_UNAVAILABLE, 503, None),
    ],
)
def test_errors_become_rfc6750_denials(code: str, status: int, challenge: str | None) -> None:
    deny = TokenError(code, "some internal reason").deny(realm="api")
    assert (deny.status, deny.code) == (status, code)
    assert dict(deny.headers).get("WWW-Authenticate") == challenge
    assert "internal" not in deny.detail
    assert deny.fields == {"reason": "some internal reason"}


def test_refusal_reasons_never_echo_the_token() -> None:
    """Reasons go to logs: none may quote the token, a claim or a header value."""
    marker = "SECRETMARKER"
    key = forge.private_for("EdDSA")
    tokens = [
        forge.token(forge.claims(iss=marker), key=key, alg="EdDSA", kid="k1"),
        forge.token(forge.claims(aud=marker), key=key, alg="EdDSA", kid="k1"),
        forge.token(forge.claims(), key=key, alg="EdDSA", kid=marker),
        forge.token(forge.claims(), key=key, alg="EdDSA", header={"alg": marker}),
        forge.token(forge.claims(), key=key, alg="EdDSA", header={"typ": marker}),
        forge.token(forge.claims(sub=marker), key=key, alg="EdDSA", kid="k1") + marker,
        marker,
        f"{marker}.{marker}.{marker}",
    ]
    verifier = forge.verifier(token_type="at+jwt")
    for token in tokens:
        result = verifier.verify_nowait(token, NOW)
        if result is None:
            continue
        assert isinstance(result, TokenError)
        assert marker not in result.reason
        assert marker not in repr(result.deny())
