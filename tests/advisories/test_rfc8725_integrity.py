"""RFC 8725 §3.x, RFC 7515, RFC 7519 §7.2: only the exact bytes that were signed are believed.

Refused: a tampered payload or header, an unsigned token or one with a short signature, an
oversized token, header or nesting (bounded work per token), duplicate claim names (parsers
disagree about which one wins), non-canonical base64url, JWE, NaN and non-UTF-8 JSON.
"""

from __future__ import annotations

import base64
import json

import pytest

from bastion.auth.jwt import INVALID_TOKEN, TokenError, VerifiedToken
from bastion.auth.jwt.jose import Limits
from tests.auth.jwt import forge
from tests.auth.jwt.forge import NOW


def refused(result: object, reason: str) -> None:
    assert isinstance(result, TokenError), result
    assert result.code == INVALID_TOKEN
    assert result.reason == reason


def _signed(alg: str, payload: object = None, header: dict[str, object] | None = None) -> str:
    body = forge.claims() if payload is None else payload
    return forge.token(body, key=forge.private_for(alg), alg=alg, kid=f"k-{alg}", header=header)  # type: ignore[arg-type]


@pytest.mark.parametrize("alg", forge.ALL_ASYMMETRIC)
def test_tampered_payload_refused(alg: str) -> None:
    head, _, sig = _signed(alg).split(".")
    evil = forge.part(forge.claims(sub="admin", scope="admin"))
    refused(
        forge.verifier().verify_nowait(f"{head}.{evil}.{sig}", NOW), "signature does not verify"
    )


@pytest.mark.parametrize("alg", forge.ALL_ASYMMETRIC)
def test_tampered_payload_under_a_cached_signature_refused(alg: str) -> None:
    """The token cache is keyed by the signature: a payload swapped under the signature of a
    token verified (and cached) a moment ago is still refused, as text and as header bytes."""
    verifier = forge.verifier()
    good = _signed(alg)
    assert isinstance(verifier.verify_nowait(good, NOW), VerifiedToken)
    assert isinstance(verifier.verify_nowait(good.encode(), NOW), VerifiedToken)  # cached
    head, _, sig = good.split(".")
    evil = f"{head}.{forge.part(forge.claims(sub='admin', scope='admin'))}.{sig}"
    refused(verifier.verify_nowait(evil, NOW), "signature does not verify")
    refused(verifier.verify_nowait(evil.encode(), NOW), "signature does not verify")
    assert isinstance(verifier.verify_nowait(good.encode(), NOW), VerifiedToken)


def test_tampered_payload_refused_hmac() -> None:
    secret = bytes(range(64))
    from bastion.auth.jwt.claims import ClaimsPolicy
    from bastion.auth.jwt.jose import VerificationKey
    from bastion.auth.jwt.keyset import StaticKeys
    from bastion.auth.jwt.verifier import Issuer, TokenVerifier

    hs = frozenset({"HS256"})
    policy = ClaimsPolicy(forge.ISSUER, frozenset({forge.AUDIENCE}))
    verifier = TokenVerifier([Issuer(policy, hs, StaticKeys([VerificationKey(None, hs, secret)]))])
    good = forge.token(forge.claims(), key=secret, alg="HS256", kid=None)
    assert isinstance(verifier.verify_nowait(good, NOW), VerifiedToken)
    head, _, sig = good.split(".")
    evil = forge.part(forge.claims(sub="admin"))
    refused(verifier.verify_nowait(f"{head}.{evil}.{sig}", NOW), "signature does not verify")


@pytest.mark.parametrize("alg", forge.ALL_ASYMMETRIC)
def test_tampered_header_refused(alg: str) -> None:
    _, payload, sig = _signed(alg).split(".")
    head = forge.part({"alg": alg, "kid": f"k-{alg}", "typ": "at+jwt"})
    refused(
        forge.verifier().verify_nowait(f"{head}.{payload}.{sig}", NOW), "signature does not verify"
    )


@pytest.mark.parametrize("alg", forge.ALL_ASYMMETRIC)
def test_signature_from_another_token_refused(alg: str) -> None:
    first = _signed(alg, forge.claims(jti="a")).split(".")
    second = _signed(alg, forge.claims(jti="b")).split(".")
    spliced = f"{first[0]}.{first[1]}.{second[2]}"
    refused(forge.verifier().verify_nowait(spliced, NOW), "signature does not verify")


def test_unsigned_token_refused() -> None:
    head, payload, _ = _signed("EdDSA").split(".")
    refused(forge.verifier().verify_nowait(f"{head}.{payload}.", NOW), "token is unsigned")
    refused(forge.verifier().verify_nowait(f"{head}.{payload}", NOW), "token is not a compact JWS")


@pytest.mark.parametrize("alg", forge.ALL_ASYMMETRIC)
@pytest.mark.parametrize("keep", [0.5, 0.0, 1.5])
def test_short_signature_refused(alg: str, keep: float) -> None:
    head, payload, sig = _signed(alg).split(".")
    sig_bytes = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
    cut = sig_bytes[: int(len(sig_bytes) * keep)] if keep < 1 else sig_bytes + b"\x00"
    result = forge.verifier().verify_nowait(f"{head}.{payload}.{forge.b64(cut)}", NOW)
    assert isinstance(result, TokenError)
    assert result.reason in (
        "token is unsigned",
        "signature has the wrong length",
        "signature does not verify",
    )


def test_ecdsa_signature_of_zeros_refused() -> None:
    """The 'psychic signatures' bug (CVE-2022-21449): r = s = 0 must never verify."""
    head, payload, _ = _signed("ES256").split(".")
    refused(
        forge.verifier().verify_nowait(f"{head}.{payload}.{forge.b64(bytes(64))}", NOW),
        "signature does not verify",
    )


def test_oversized_token_refused() -> None:
    big = _signed("EdDSA", forge.claims(pad="x" * 9000))
    refused(forge.verifier().verify_nowait(big, NOW), "token exceeds the size limit")
    small = forge.verifier(limits=Limits(max_token_bytes=256))
    refused(small.verify_nowait(_signed("EdDSA"), NOW), "token exceeds the size limit")


def test_oversized_header_refused() -> None:
    token = _signed("EdDSA", header={"x": "y" * 2000})
    refused(forge.verifier().verify_nowait(token, NOW), "header exceeds the size limit")


def test_deeply_nested_payload_refused() -> None:
    nested: object = "x"
    for _ in range(40):
        nested = [nested]
    token = _signed("EdDSA", forge.claims(deep=nested))
    refused(forge.verifier().verify_nowait(token, NOW), "payload nests too deeply")
    brackets = '{"a":' + "[" * 3000 + "]" * 3000 + "}"
    token = _signed("EdDSA", brackets)
    refused(forge.verifier().verify_nowait(token, NOW), "payload nests too deeply")


def test_duplicate_claims_refused() -> None:
    good = json.dumps(forge.claims())[:-1]
    for text in (
        good + ', "sub": "admin"}',
        good + ', "aud": "https://other.example"}',
        good + ', "exp": 9999999999}',
    ):
        refused(
            forge.verifier().verify_nowait(_signed("EdDSA", text), NOW),
            "duplicate JSON member name",
        )


def test_duplicate_header_members_refused() -> None:
    key = forge.private_for("EdDSA")
    head = forge.b64(b'{"alg":"EdDSA","kid":"k-EdDSA","alg":"none"}')
    payload = forge.part(forge.claims())
    sig = forge.b64(forge.signature(f"{head}.{payload}".encode(), "EdDSA", key))
    refused(
        forge.verifier().verify_nowait(f"{head}.{payload}.{sig}", NOW), "duplicate JSON member name"
    )


def test_padded_or_noncanonical_base64_refused() -> None:
    head, payload, sig = _signed("EdDSA").split(".")
    refused(
        forge.verifier().verify_nowait(f"{head}.{payload}.{sig}==", NOW),
        "signature is not base64url",
    )
    standard = sig.replace("-", "+").replace("_", "/")
    if standard != sig:
        refused(
            forge.verifier().verify_nowait(f"{head}.{payload}.{standard}", NOW),
            "signature is not base64url",
        )
    # the last character of a 64-byte signature carries 4 unused bits: flip one of them
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(sig[-1])
    twin = sig[:-1] + alphabet[last ^ 1]
    refused(
        forge.verifier().verify_nowait(f"{head}.{payload}.{twin}", NOW),
        "signature is not canonical base64url",
    )


def test_encrypted_token_refused() -> None:
    refused(
        forge.verifier().verify_nowait("a.b.c.d.e", NOW), "encrypted tokens (JWE) are not accepted"
    )


@pytest.mark.parametrize("text", ['{"exp": NaN}', '{"exp": Infinity}', '{"exp": -Infinity}'])
def test_nan_in_claims_refused(text: str) -> None:
    refused(forge.verifier().verify_nowait(_signed("EdDSA", text), NOW), "NaN or Infinity in JSON")


def test_non_utf8_payload_refused() -> None:
    payload = json.dumps(forge.claims()).encode("utf-16")
    refused(forge.verifier().verify_nowait(_signed("EdDSA", payload), NOW), "payload is not UTF-8")


@pytest.mark.parametrize("payload", ["[1, 2]", '"text"', "42", "null", "not json"])
def test_payload_that_is_not_an_object_refused(payload: str) -> None:
    result = forge.verifier().verify_nowait(_signed("EdDSA", payload), NOW)
    assert isinstance(result, TokenError)
    assert result.reason in ("payload is not a JSON object", "payload is not JSON")


@pytest.mark.parametrize("token", ["", ".", "..", "a.b.c", "é.b.c", "x" * 100, 42, None])
def test_garbage_refused(token: object) -> None:
    result = forge.verifier().verify_nowait(token, NOW)  # type: ignore[arg-type]
    assert isinstance(result, TokenError)
    assert result.code == INVALID_TOKEN
