"""The configuration models: secure defaults, and the weaker choices that must be spelled out."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from bastion.auth.jwt import (
    IssuerSettings,
    SigningSettings,
    TokenSettings,
    VerifiedToken,
    build_verifier,
)
from tests.auth.jwt import forge

ISS = "https://idp.example.test"
SECRET = "Zq3v8Rk1Lm0Xw7Yt2Hs9Nb4Gc6Pd5Fa0Je3Ku8Vo1Mi7Qr2Sx9Tz4Ly6Wn5Bh0Cg"


def issuer(**changes: Any) -> IssuerSettings:
    return IssuerSettings(**{"issuer": ISS, "audiences": ["api"], **changes})


def test_issuer_defaults_are_the_secure_ones() -> None:
    settings = issuer()
    assert settings.algorithms == ["RS256", "ES256", "EdDSA"]
    assert settings.allow_http is False
    assert settings.leeway == 30.0
    assert settings.required_claims == ["sub"]
    assert settings.identity_method == "oidc"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"issuer": "http://idp.example.test"}, "https"),
        ({"issuer": "https://user:pw@idp.example.test"}, "user:password"),
        ({"jwks_uri": "http://idp.example.test/jwks"}, "https"),
        ({"audiences": []}, "at least 1"),
        ({"algorithms": ["none"]}, "algorithms"),
        ({"algorithms": ["HS256"]}, "shared_secret"),
        ({"algorithms": ["HS256", "RS256"], "shared_secret": SECRET}, "cannot share"),
        ({"shared_secret": SECRET}, "needs HS256"),
        ({"algorithms": ["HS256"], "shared_secret": "password123"}, "random bytes"),
        ({"algorithms": ["HS256"], "shared_secret": "a" * 64}, "random bytes"),
        ({"algorithms": ["HS512"], "shared_secret": SECRET[:50]}, "at least 64"),
        (
            {"algorithms": ["HS256"], "shared_secret": SECRET, "jwks_uri": ISS + "/jwks"},
            "no discovery_url",
        ),
        ({"leeway": "10m"}, "less than or equal"),
        ({"required_claims": ["a b"]}, "claim names"),
        ({"unknown": 1}, "Extra inputs"),
    ],
)
def test_issuer_settings_refuse(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        issuer(**changes)


def test_secret_never_appears_in_errors_or_repr() -> None:
    settings = issuer(algorithms=["HS256"], shared_secret=SECRET)
    assert SECRET not in repr(settings)
    with pytest.raises(ValidationError) as caught:
        issuer(algorithms=["HS512"], shared_secret=SECRET[:40])
    assert SECRET[:40] not in str(caught.value)


def test_plain_http_when_spelled_out() -> None:
    assert issuer(issuer="http://127.0.0.1:9000", allow_http=True).allow_http


def test_signing_settings() -> None:
    settings = SigningSettings(issuer="https://gw.example.test", audiences=["api"])
    assert (settings.algorithm, settings.token_lifetime, settings.max_token_lifetime) == (
        "EdDSA",
        300.0,
        3600.0,
    )
    for changes, message in [
        ({"token_lifetime": "2h"}, "must not exceed"),
        ({"publish_ahead": "8d"}, "shorter than"),
        ({"key_dir": "../elsewhere"}, "relative"),
        ({"key_dir": "/etc"}, "relative"),
        ({"algorithm": "RS256"}, "EdDSA"),
        ({"max_token_lifetime": "2d"}, "less than or equal"),
    ]:
        with pytest.raises(ValidationError, match=message):
            SigningSettings(issuer="https://gw.example.test", audiences=["api"], **changes)


def test_models_are_frozen() -> None:
    with pytest.raises(ValidationError):
        issuer().leeway = 0  # type: ignore[misc]


def test_one_iss_per_issuer() -> None:
    with pytest.raises(ValidationError, match="once"):
        TokenSettings(issuers=[issuer(), issuer()])
    with pytest.raises(ValidationError, match="once"):
        TokenSettings(issuers=[issuer()], signing=SigningSettings(issuer=ISS, audiences=["a"]))


def test_shared_secret_issuer_verifies_hs256() -> None:
    settings = TokenSettings(
        issuers=[
            issuer(
                issuer=forge.ISSUER,
                audiences=[forge.AUDIENCE],
                algorithms=["HS256"],
                shared_secret=SECRET,
            )
        ]
    )
    verifier = build_verifier(settings)
    token = forge.token(forge.claims(), key=SECRET.encode(), alg="HS256", kid=None)
    result = verifier.verify_nowait(token, forge.NOW)
    assert isinstance(result, VerifiedToken)
    wrong = forge.token(forge.claims(), key=SECRET.encode()[:-1], alg="HS256", kid=None)
    assert not isinstance(verifier.verify_nowait(wrong, forge.NOW), VerifiedToken)


def test_build_verifier_needs_the_signing_keys_it_names() -> None:
    settings = TokenSettings(
        signing=SigningSettings(issuer="https://gw.example.test", audiences=["a"])
    )
    with pytest.raises(ValueError, match="SigningKeys"):
        build_verifier(settings)
