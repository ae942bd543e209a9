"""JWK conversion: the keys bastion accepts from a JWKS, and the ones it refuses."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from bastion.auth.jwt.jwk import (
    JWKError,
    jwk_from_public_key,
    key_from_jwk,
    public_key_from_jwk,
    thumbprint,
)
from tests.auth.jwt import forge

ASYM = frozenset(forge.ALL_ASYMMETRIC) | {"RS384", "PS384", "ES512"}


def test_rfc7638_thumbprint_example() -> None:
    jwk = {
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSo"
        "c_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0"
        "_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI"
        "4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


@pytest.mark.parametrize("alg", ["EdDSA", "ES256", "ES384", "RS256"])
def test_public_keys_round_trip(alg: str) -> None:
    public = forge.private_for(alg).public_key()
    jwk = jwk_from_public_key(public, kid="k", alg=alg)
    assert jwk["use"] == "sig"
    assert "d" not in jwk
    again = public_key_from_jwk(jwk)
    assert jwk_from_public_key(again, kid="k", alg=alg) == jwk
    assert key_from_jwk(jwk, ASYM).algorithms == frozenset({alg})


def test_key_without_alg_is_bound_to_its_type_and_the_allowlist() -> None:
    jwk = jwk_from_public_key(forge.private_for("RS256").public_key(), kid="k", alg="RS256")
    del jwk["alg"]
    assert key_from_jwk(jwk, frozenset({"RS256", "PS256", "ES256"})).algorithms == {
        "RS256",
        "PS256",
    }
    ed = jwk_from_public_key(forge.private_for("EdDSA").public_key(), kid="e", alg="EdDSA")
    del ed["alg"]
    assert key_from_jwk(ed, ASYM).algorithms == {"EdDSA"}


def _jwk(base: str = "ES256", **changes: Any) -> dict[str, Any]:
    jwk = jwk_from_public_key(forge.private_for(base).public_key(), kid="k", alg=base)
    jwk.update(changes)
    return {k: v for k, v in jwk.items() if v is not None}


@pytest.mark.parametrize(
    ("jwk", "message"),
    [
        (_jwk(d="AAAA"), "private key members"),
        (_jwk("RS256", p="AAAA"), "private key members"),
        ({"kty": "oct", "k": "AAAA"}, "symmetric"),
        (_jwk(use="enc"), "not for signatures"),
        (_jwk(key_ops=["encrypt"]), "not for verification"),
        (_jwk(alg="EdDSA"), "does not match"),
        (_jwk(alg="HS256"), "does not match"),
        (_jwk(crv="P-192"), "not on P-256"),
        (_jwk(x="AAAA"), "wrong length"),
        (_jwk(y=forge.b64(bytes(32))), "not a point"),
        (_jwk("EdDSA", crv="Ed448"), "not Ed25519"),
        (_jwk(kid=7), "kid"),
        ({"kty": "XYZ"}, "kty"),
        ({"kty": "RSA", "n": 7, "e": "AQAB"}, "missing or not a string"),
        (_jwk(x="AA=="), "base64url"),
    ],
)
def test_unusable_jwks_refused(jwk: dict[str, Any], message: str) -> None:
    with pytest.raises(JWKError, match=message):
        key_from_jwk(jwk, ASYM | {"HS256"})


def test_short_rsa_keys_refused() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()  # noqa: S505
    jwk = jwk_from_public_key(small, kid="k", alg="RS256")
    with pytest.raises(JWKError, match="2048"):
        key_from_jwk(jwk, ASYM)


def test_even_rsa_exponent_refused() -> None:
    jwk = _jwk("RS256", e=forge.b64((65536).to_bytes(3, "big")))
    with pytest.raises(JWKError, match="exponent"):
        key_from_jwk(jwk, ASYM)


def test_algorithm_outside_allowlist_makes_the_key_unusable() -> None:
    with pytest.raises(JWKError, match="allowlist"):
        key_from_jwk(_jwk("ES256"), frozenset({"RS256"}))
