"""Compact JWS parsing and signatures: every algorithm both ways, and the strict decoding rules."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bastion.auth.jwt.errors import TokenRejected
from bastion.auth.jwt.jose import (
    ALGORITHMS,
    DEFAULT_LIMITS,
    VerificationKey,
    b64url_decode,
    json_depth_within,
    load_json_object,
    parse_compact,
    sign_compact,
    verify_signature,
)
from tests.auth.jwt import forge

ALL = ("EdDSA", "ES256", "ES384", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512")


def key_for(alg: str, private: object | None = None) -> VerificationKey:
    source = private if private is not None else forge.private_for(alg)
    return VerificationKey("k1", frozenset({alg}), source.public_key())  # type: ignore[attr-defined]


@pytest.mark.parametrize("alg", ALL)
def test_every_asymmetric_algorithm_verifies_its_own_signature(alg: str) -> None:
    token = forge.token(forge.claims(), key=forge.private_for(alg), alg=alg)
    jws = parse_compact(token)
    assert (jws.alg, jws.kid, jws.claims["sub"]) == (alg, "k1", "alice")
    assert verify_signature(jws, key_for(alg))


@pytest.mark.parametrize("alg", ALL)
def test_a_signature_by_another_key_of_the_same_type_fails(alg: str) -> None:
    token = forge.token(forge.claims(), key=forge.private_for(alg), alg=alg)
    if alg == "EdDSA":
        other: object = Ed25519PrivateKey.generate()
    elif alg.startswith("ES"):
        other = ec.generate_private_key(ec.SECP256R1() if alg == "ES256" else ec.SECP384R1())
    else:
        from cryptography.hazmat.primitives.asymmetric import rsa

        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert not verify_signature(parse_compact(token), key_for(alg, other))


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_hmac_verifies_with_the_shared_secret_only(alg: str) -> None:
    secret = bytes(range(64))
    jws = parse_compact(forge.token(forge.claims(), key=secret, alg=alg))
    assert verify_signature(jws, VerificationKey(None, frozenset({alg}), secret))
    assert not verify_signature(jws, VerificationKey(None, frozenset({alg}), secret[:-1] + b"x"))


def test_es256_key_on_another_curve_never_verifies() -> None:
    token = forge.token(forge.claims(), key=forge.private_for("ES256"), alg="ES256")
    p384 = VerificationKey("k1", frozenset({"ES256"}), forge.private_for("ES384").public_key())
    assert not verify_signature(parse_compact(token), p384)


@pytest.mark.parametrize("alg", ["EdDSA", "ES256"])
def test_bastion_signer_round_trip(alg: str) -> None:
    private = forge.private_for(alg)
    token = sign_compact({"typ": "at+jwt", "kid": "k1"}, {"sub": "x"}, private, alg)  # type: ignore[arg-type]
    jws = parse_compact(token)
    assert jws.header == {"typ": "at+jwt", "kid": "k1", "alg": alg}
    assert verify_signature(jws, key_for(alg))


def test_bastion_signer_refuses_other_algorithms() -> None:
    with pytest.raises(ValueError, match="EdDSA or ECDSA"):
        sign_compact({}, {}, forge.private_for("EdDSA"), "ES256")  # type: ignore[arg-type]


def test_algorithm_table_is_exact() -> None:
    assert "none" not in {name.lower() for name in ALGORITHMS}
    assert ALGORITHMS["ES512"].signature_length == 132
    assert DEFAULT_LIMITS.max_token_bytes == 8192


@pytest.mark.parametrize(
    ("text", "ok"),
    [("", True), ("AA", True), ("AAA", True), ("A", False), ("AA==", False), ("A+/=", False)],
)
def test_base64url_is_strict(text: str, ok: bool) -> None:
    if ok:
        b64url_decode(text, "x")
    else:
        with pytest.raises(TokenRejected):
            b64url_decode(text, "x")


def test_depth_ignores_brackets_inside_strings() -> None:
    assert json_depth_within('{"a": "[[[[[[[[[[[[", "b": "\\"[[[["}', 2)
    assert not json_depth_within('{"a": [[[1]]]}', 3)
    assert json_depth_within('{"a": [[[1]]]}', 4)


def test_json_objects_only_no_duplicates() -> None:
    assert load_json_object(b'{"a": {"b": 1}}', "x", 4) == {"a": {"b": 1}}
    with pytest.raises(TokenRejected, match="duplicate"):
        load_json_object(b'{"a": {"b": 1, "b": 2}}', "x", 4)
    with pytest.raises(TokenRejected, match="not JSON"):
        load_json_object(b'{"a": 1' + b"0" * 5000 + b"}", "x", 4)  # int beyond str digits limit


def test_typ_must_be_a_string() -> None:
    token = forge.token(
        forge.claims(), key=forge.private_for("EdDSA"), alg="EdDSA", header={"typ": 1}
    )
    with pytest.raises(TokenRejected, match="typ is not a string"):
        parse_compact(token)


def test_thumbprint_header_is_allowed_and_ignored() -> None:
    """Azure AD and others send x5t next to kid: it locates nothing, so it is harmless."""
    token = forge.token(
        forge.claims(), key=forge.private_for("RS256"), alg="RS256", header={"x5t": "abc"}
    )
    assert verify_signature(parse_compact(token), key_for("RS256"))
