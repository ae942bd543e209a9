"""RFC 8725 §2.1, §3.1, §3.2: the algorithm a token names never decides how it is verified.

Refused: ``alg: none`` in any letter case, an HMAC made with a public key as the secret
(algorithm confusion), an algorithm outside the issuer's allowlist, a key used with an
algorithm other than its own, and HMAC keys coming from a JWKS.
"""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from bastion.auth.jwt import INVALID_TOKEN, TokenError, VerifiedToken
from bastion.auth.jwt.claims import ClaimsPolicy
from bastion.auth.jwt.jose import VerificationKey
from bastion.auth.jwt.jwk import JWKError, jwk_from_public_key, key_from_jwk
from bastion.auth.jwt.jwks import IssuerKeys
from bastion.auth.jwt.keyset import StaticKeys
from bastion.auth.jwt.settings import IssuerSettings
from bastion.auth.jwt.verifier import Issuer, TokenVerifier
from tests.auth.jwt import forge
from tests.auth.jwt.forge import AUDIENCE, ISSUER, NOW


def refused(result: object, reason: str) -> None:
    assert isinstance(result, TokenError), result
    assert result.code == INVALID_TOKEN
    assert result.reason == reason


def test_valid_token_is_accepted_control() -> None:
    for alg in forge.ALL_ASYMMETRIC:
        token = forge.token(forge.claims(), key=forge.private_for(alg), alg=alg, kid=f"k-{alg}")
        assert isinstance(forge.verifier().verify_nowait(token, NOW), VerifiedToken), alg


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE", "NoNe"])
@pytest.mark.parametrize("signature", [b"", b"\x00" * 64])
def test_alg_none_refused_in_every_letter_case(alg: str, signature: bytes) -> None:
    head = forge.part({"alg": alg, "kid": "k1"})
    token = f"{head}.{forge.part(forge.claims())}.{forge.b64(signature)}"
    result = forge.verifier().verify_nowait(token, NOW)
    refused(result, "token is unsigned" if not signature else "alg none is refused")


@pytest.mark.parametrize("alg", ["none", "NONE"])
def test_alg_none_refused_even_with_kid_of_a_real_key(alg: str) -> None:
    token = forge.token(forge.claims(), key=None, alg=alg, kid="k-EdDSA") + "AAAA"
    refused(forge.verifier().verify_nowait(token, NOW), "alg none is refused")


def _rsa_confusion_secrets() -> list[bytes]:
    key = forge.private_for("RS256").public_key()
    jwk = jwk_from_public_key(key, kid="k-RS256", alg="RS256")
    return [forge.public_pem(forge.private_for("RS256")), json.dumps(jwk).encode()]


@pytest.mark.parametrize("secret", _rsa_confusion_secrets(), ids=["pem", "jwk-json"])
@pytest.mark.parametrize("hs", ["HS256", "HS384", "HS512"])
def test_hmac_with_rsa_public_key_as_secret_refused(secret: bytes, hs: str) -> None:
    token = forge.token(forge.claims(), key=secret, alg=hs, kid="k-RS256")
    refused(forge.verifier().verify_nowait(token, NOW), "alg is not allowed for this issuer")


def test_hmac_with_ec_public_key_as_secret_refused() -> None:
    for alg in ("ES256", "EdDSA"):
        secret = forge.public_pem(forge.private_for(alg))
        token = forge.token(forge.claims(), key=secret, alg="HS256", kid=f"k-{alg}")
        refused(forge.verifier().verify_nowait(token, NOW), "alg is not allowed for this issuer")


def test_hmac_with_public_key_refused_even_if_allowlist_names_hs256() -> None:
    """A misconfigured allowlist still cannot make a public key verify an HMAC."""
    allowed = frozenset({"RS256", "HS256"})
    jwk = jwk_from_public_key(forge.private_for("RS256").public_key(), kid="k1", alg="RS256")
    rsa_key = key_from_jwk(jwk, allowed)
    assert rsa_key.algorithms == frozenset({"RS256"})
    policy = ClaimsPolicy(ISSUER, frozenset({AUDIENCE}))
    verifier = TokenVerifier([Issuer(policy, allowed, StaticKeys([rsa_key]))])
    secret = forge.public_pem(forge.private_for("RS256"))
    token = forge.token(forge.claims(), key=secret, alg="HS256", kid="k1")
    refused(verifier.verify_nowait(token, NOW), "the key named by kid does not allow this alg")
    # and a key object wrongly bound to HS256 still never HMACs with public key material:
    bound = VerificationKey("k1", allowed, rsa_key.material)
    verifier = TokenVerifier([Issuer(policy, allowed, StaticKeys([bound]))])
    refused(verifier.verify_nowait(token, NOW), "signature does not verify")


def test_hmac_algorithms_never_use_keys_from_a_jwks() -> None:
    with pytest.raises(ValueError, match="HMAC"):
        IssuerKeys(ISSUER, algorithms=frozenset({"HS256"}))
    with pytest.raises(ValidationError, match="shared_secret"):
        IssuerSettings(issuer=ISSUER, audiences=[AUDIENCE], algorithms=["HS256"])
    with pytest.raises(JWKError, match="symmetric"):
        key_from_jwk({"kty": "oct", "k": forge.b64(b"x" * 32)}, frozenset({"HS256"}))


def test_alg_outside_issuer_allowlist_refused() -> None:
    token = forge.token(forge.claims(), key=forge.private_for("ES256"), alg="ES256", kid="k1")
    verifier = forge.verifier(("EdDSA",))
    refused(verifier.verify_nowait(token, NOW), "alg is not allowed for this issuer")


def test_key_used_with_another_algorithm_of_its_type_refused() -> None:
    """RFC 8725 §3.1: one algorithm per key. An RS256 key does not verify PS256."""
    token = forge.token(forge.claims(), key=forge.private_for("PS256"), alg="PS256", kid="k-RS256")
    verifier = forge.verifier(("RS256", "PS256"))
    refused(verifier.verify_nowait(token, NOW), "the key named by kid does not allow this alg")


def test_key_of_another_type_refused() -> None:
    """An ES256 token naming the Ed25519 key's kid is not verified with it."""
    token = forge.token(forge.claims(), key=forge.private_for("ES256"), alg="ES256", kid="k-EdDSA")
    refused(
        forge.verifier().verify_nowait(token, NOW), "the key named by kid does not allow this alg"
    )


@pytest.mark.parametrize("alg", ["ES256K", "HS1", "RS1", "Ed25519", "dir", ""])
def test_unknown_algorithm_refused(alg: str) -> None:
    token = forge.token(forge.claims(), key=b"k" * 32, alg="HS256", header={"alg": alg})
    refused(forge.verifier().verify_nowait(token, NOW), "alg is not supported")


def test_missing_alg_refused() -> None:
    token = f"{forge.part({'kid': 'k1'})}.{forge.part(forge.claims())}.{forge.b64(b'x' * 64)}"
    refused(forge.verifier().verify_nowait(token, NOW), "header has no alg")
