"""Tokens made by hand for tests: any header, any claims, any key, any algorithm, or none.

bastion's own signer refuses to make most of these; an attacker does not ask it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from bastion.auth.jwt.claims import ClaimsPolicy
from bastion.auth.jwt.jwk import jwk_from_public_key, key_from_jwk
from bastion.auth.jwt.keyset import StaticKeys
from bastion.auth.jwt.verifier import Issuer, TokenVerifier

ISSUER = "https://idp.example.test"
AUDIENCE = "https://api.example.test"
NOW = 1_800_000_000.0

PrivateKey = Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def json_text(value: Mapping[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"))


def part(value: Mapping[str, Any] | str | bytes) -> str:
    """A base64url segment of a JSON object, or of raw text/bytes given as is."""
    if isinstance(value, str):
        return b64(value.encode())
    if isinstance(value, bytes):
        return b64(value)
    return b64(json.dumps(value, separators=(",", ":")).encode())


_HASH = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}


def signature(data: bytes, alg: str, key: PrivateKey | bytes) -> bytes:
    bits = alg[-3:]
    if alg.startswith("HS"):
        assert isinstance(key, bytes)
        return hmac.new(key, data, getattr(hashlib, f"sha{bits}")).digest()
    if alg == "EdDSA":
        assert isinstance(key, Ed25519PrivateKey)
        return key.sign(data)
    if alg.startswith("ES"):
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(_HASH[bits])))
        size = {"256": 32, "384": 48, "512": 66}[bits]
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    assert isinstance(key, rsa.RSAPrivateKey)
    if alg.startswith("RS"):
        return key.sign(data, padding.PKCS1v15(), _HASH[bits])
    pss = padding.PSS(padding.MGF1(_HASH[bits]), _HASH[bits].digest_size)
    return key.sign(data, pss, _HASH[bits])


def token(
    claims: Mapping[str, Any] | str | bytes,
    *,
    key: PrivateKey | bytes | None,
    alg: str,
    kid: str | None = "k1",
    header: Mapping[str, Any] | None = None,
) -> str:
    """A compact JWS; ``header`` adds or replaces header members; ``key=None``: no signature."""
    head: dict[str, Any] = {"alg": alg}
    if kid is not None:
        head["kid"] = kid
    head.update(header or {})
    signing_input = f"{part(head)}.{part(claims)}"
    sig = b"" if key is None else signature(signing_input.encode(), alg, key)
    return f"{signing_input}.{b64(sig)}"


def claims(now: float = NOW, **overrides: Any) -> dict[str, Any]:
    """Valid access-token claims at ``now``; ``name=None`` removes a claim."""
    base: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "alice",
        "aud": AUDIENCE,
        "exp": int(now) + 300,
        "iat": int(now),
        "jti": "jti-1",
        "client_id": "app-1",
        "scope": "read write",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


@dataclass(frozen=True)
class Keys:
    ed25519: Ed25519PrivateKey
    p256: ec.EllipticCurvePrivateKey
    p384: ec.EllipticCurvePrivateKey
    rsa: rsa.RSAPrivateKey


@cache
def keys() -> Keys:
    return Keys(
        Ed25519PrivateKey.generate(),
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP384R1()),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
    )


def private_for(alg: str) -> PrivateKey:
    k = keys()
    if alg == "EdDSA":
        return k.ed25519
    if alg == "ES256":
        return k.p256
    if alg == "ES384":
        return k.p384
    return k.rsa


def public_pem(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def jwks_of(*pairs: tuple[str, str]) -> dict[str, Any]:
    """A JWKS with the public key for each (kid, alg)."""
    return {
        "keys": [
            jwk_from_public_key(private_for(alg).public_key(), kid=kid, alg=alg)
            for kid, alg in pairs
        ]
    }


ALL_ASYMMETRIC = ("EdDSA", "ES256", "ES384", "RS256", "PS256")


def verifier(
    algorithms: tuple[str, ...] = ALL_ASYMMETRIC,
    *,
    token_type: str | None = None,
    leeway: float = 30.0,
    **kwargs: Any,
) -> TokenVerifier:
    """A verifier trusting ISSUER with one key per algorithm, kid ``k-<alg>`` and ``k1`` for
    the first algorithm."""
    allowed = frozenset(algorithms)
    pairs = [(f"k-{alg}", alg) for alg in algorithms] + [("k1", algorithms[0])]
    static = StaticKeys(key_from_jwk(jwk, allowed) for jwk in jwks_of(*pairs)["keys"])
    policy = ClaimsPolicy(ISSUER, frozenset({AUDIENCE}), leeway=leeway, token_type=token_type)
    return TokenVerifier([Issuer(policy, allowed, static)], **kwargs)
