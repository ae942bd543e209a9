"""RFC 8725 §3.8-3.11, RFC 9068 §4, RFC 9700 §2.3: a well-signed token still has to be meant
for this API, now, from the issuer whose key signed it, and of the expected type.

Refused: expired, not yet valid, issued in the future, wrong or untrusted issuer, a token of one
issuer signed with another issuer's key, wrong or missing audience, wrong ``typ``; a cached
verification ends at ``exp`` and at revocation.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bastion.auth.jwt import (
    EXPIRED_TOKEN,
    INVALID_TOKEN,
    NOT_YET_VALID,
    REVOKED_TOKEN,
    MemoryRevocations,
    TokenError,
    VerifiedToken,
)
from bastion.auth.jwt.claims import ClaimsPolicy
from bastion.auth.jwt.jwk import jwk_from_public_key, key_from_jwk
from bastion.auth.jwt.keyset import StaticKeys
from bastion.auth.jwt.verifier import Issuer, TokenVerifier
from tests.auth.jwt import forge
from tests.auth.jwt.forge import AUDIENCE, ISSUER, NOW


def refused(result: object, reason: str, code: str = INVALID_TOKEN) -> None:
    assert isinstance(result, TokenError), result
    assert (result.code, result.reason) == (code, reason)


def signed(**overrides: object) -> str:
    header = overrides.pop("header", None)
    key = forge.private_for("EdDSA")
    return forge.token(forge.claims(**overrides), key=key, alg="EdDSA", kid="k1", header=header)  # type: ignore[arg-type]


def signed_text(text: str) -> str:
    return forge.token(text, key=forge.private_for("EdDSA"), alg="EdDSA", kid="k1")


def test_expired_token_refused() -> None:
    token = signed(iat=int(NOW) - 600, exp=int(NOW) - 31)
    refused(forge.verifier().verify_nowait(token, NOW), "exp has passed", EXPIRED_TOKEN)
    within_leeway = signed(iat=int(NOW) - 600, exp=int(NOW) - 29)
    assert isinstance(forge.verifier().verify_nowait(within_leeway, NOW), VerifiedToken)
    refused(
        forge.verifier(leeway=0).verify_nowait(signed(exp=int(NOW)), NOW),
        "exp has passed",
        EXPIRED_TOKEN,
    )


def test_not_yet_valid_token_refused() -> None:
    token = signed(nbf=int(NOW) + 31)
    refused(forge.verifier().verify_nowait(token, NOW), "nbf is in the future", NOT_YET_VALID)
    assert isinstance(forge.verifier().verify_nowait(signed(nbf=int(NOW) + 29), NOW), VerifiedToken)


def test_iat_in_the_future_refused() -> None:
    token = signed(iat=int(NOW) + 120)
    refused(forge.verifier().verify_nowait(token, NOW), "iat is in the future")


@pytest.mark.parametrize("name", ["exp", "nbf", "iat"])
@pytest.mark.parametrize("value", ["1800000000", True, [1], {"t": 1}])
def test_time_claims_of_the_wrong_type_refused(name: str, value: object) -> None:
    token = signed(**{name: value})
    result = forge.verifier().verify_nowait(token, NOW)
    assert isinstance(result, TokenError)
    assert result.reason == f"{name} is not a number"


def test_time_claim_overflowing_to_infinity_refused() -> None:
    text = forge.json_text(forge.claims())[:-1] + ', "nbf": 1e400}'
    refused(forge.verifier().verify_nowait(signed_text(text), NOW), "nbf is not a number")


def test_missing_exp_refused() -> None:
    refused(forge.verifier().verify_nowait(signed(exp=None), NOW), "required claim exp is missing")


def test_wrong_issuer_refused() -> None:
    token = signed(iss="https://attacker.example")
    refused(forge.verifier().verify_nowait(token, NOW), "iss is not a trusted issuer")
    refused(forge.verifier().verify_nowait(signed(iss=None), NOW), "iss is not a trusted issuer")
    refused(
        forge.verifier().verify_nowait(signed(iss=[ISSUER]), NOW), "iss is not a trusted issuer"
    )


async def test_token_signed_by_another_trusted_issuers_key_refused() -> None:
    """The key must belong to the issuer the token names (RFC 8725 §3.8)."""
    other_key = Ed25519PrivateKey.generate()
    ours = forge.verifier(("EdDSA",)).issuers[ISSUER]
    other_jwk = jwk_from_public_key(other_key.public_key(), kid="other-1", alg="EdDSA")
    other = Issuer(
        ClaimsPolicy("https://other.example", frozenset({AUDIENCE})),
        frozenset({"EdDSA"}),
        StaticKeys([key_from_jwk(other_jwk, frozenset({"EdDSA"}))]),
    )
    verifier = TokenVerifier([ours, other])
    forged = forge.token(forge.claims(), key=other_key, alg="EdDSA", kid="other-1")
    refused(await verifier.verify(forged, NOW), "kid does not name a key of the issuer")
    forged_same_kid = forge.token(forge.claims(), key=other_key, alg="EdDSA", kid="k1")
    refused(verifier.verify_nowait(forged_same_kid, NOW), "signature does not verify")


@pytest.mark.parametrize(
    "aud",
    ["https://other.example", ["https://other.example"], [], "", None, 42, [AUDIENCE, 42]],
)
def test_wrong_audience_refused(aud: object) -> None:
    result = forge.verifier().verify_nowait(signed(aud=aud), NOW)
    assert isinstance(result, TokenError)
    assert result.code == INVALID_TOKEN
    assert result.reason in (
        "aud does not name this API",
        "aud is not a string or a list of strings",
        "required claim aud is missing",
    )


def test_audience_list_naming_this_api_accepted() -> None:
    token = signed(aud=["https://other.example", AUDIENCE])
    assert isinstance(forge.verifier().verify_nowait(token, NOW), VerifiedToken)


@pytest.mark.parametrize("typ", ["JWT", "jwt", "id_token+jwt", "at+jwt2", None, ""])
def test_wrong_typ_refused(typ: str | None) -> None:
    header = {} if typ is None else {"typ": typ}
    result = forge.verifier(token_type="at+jwt").verify_nowait(signed(header=header), NOW)
    refused(result, "typ is not the expected token type")


@pytest.mark.parametrize("typ", ["at+jwt", "AT+JWT", "application/at+jwt"])
def test_expected_typ_accepted_in_its_equivalent_forms(typ: str) -> None:
    result = forge.verifier(token_type="at+jwt").verify_nowait(signed(header={"typ": typ}), NOW)
    assert isinstance(result, VerifiedToken)


def test_cached_token_refused_after_exp() -> None:
    verifier = forge.verifier()
    token = signed(exp=int(NOW) + 60)
    assert isinstance(verifier.verify_nowait(token, NOW), VerifiedToken)
    assert len(verifier.cache) == 1
    assert isinstance(verifier.verify_nowait(token, NOW + 89), VerifiedToken)
    refused(verifier.verify_nowait(token, NOW + 90), "exp has passed", EXPIRED_TOKEN)


def test_cached_token_refused_after_revocation() -> None:
    revocations = MemoryRevocations()
    verifier = forge.verifier(revocations=revocations)
    token = signed(jti="jti-revoked")
    assert isinstance(verifier.verify_nowait(token, NOW), VerifiedToken)
    revocations.revoke_jti(ISSUER, "jti-revoked", expires_at=NOW + 300)
    refused(verifier.verify_nowait(token, NOW + 1), "token was revoked", REVOKED_TOKEN)
    verifier.cache.clear()
    refused(verifier.verify_nowait(token, NOW + 1), "token was revoked", REVOKED_TOKEN)


def test_subject_revocation_refuses_older_tokens_only() -> None:
    revocations = MemoryRevocations()
    verifier = forge.verifier(revocations=revocations)
    old = signed(jti="old", iat=int(NOW) - 10)
    assert isinstance(verifier.verify_nowait(old, NOW), VerifiedToken)
    revocations.revoke_subject(ISSUER, "alice", at=NOW - 5)
    refused(verifier.verify_nowait(old, NOW), "token was revoked", REVOKED_TOKEN)
    new = signed(jti="new", iat=int(NOW))
    assert isinstance(verifier.verify_nowait(new, NOW), VerifiedToken)
