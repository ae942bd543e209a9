"""JSON Web Keys (RFC 7517, 7518 §6, 8037) to and from ``cryptography`` public keys.

Only public signature keys are read: ``kty`` ``EC`` (P-256/384/521), ``OKP`` (Ed25519) and
``RSA`` (2048 bits or more). A symmetric (``oct``) key or a JWK carrying private members is
refused, so that nothing fetched from a JWKS can ever become an HMAC secret (algorithm confusion,
RFC 8725 §2.1). Each key is bound to the algorithms it may verify: its ``alg`` if it names one,
otherwise those its type allows, always intersected with the issuer's allowlist.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bastion.auth.jwt.errors import TokenRejected
from bastion.auth.jwt.jose import (
    ALGORITHMS,
    MAX_KID_LENGTH,
    MIN_RSA_BITS,
    PublicKey,
    VerificationKey,
    b64url_decode,
    b64url_encode,
)

_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
_EC_CURVES: Mapping[str, tuple[ec.EllipticCurve, int]] = {
    "P-256": (ec.SECP256R1(), 32),
    "P-384": (ec.SECP384R1(), 48),
    "P-521": (ec.SECP521R1(), 66),
}
_CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


class JWKError(ValueError):
    """A JWK bastion will not use; the message says why in bastion's words (no key material)."""


def compatible_algorithms(kty: str, crv: str | None) -> frozenset[str]:
    """The algorithms a key of this type may verify (never an HMAC one)."""
    if kty == "RSA":
        return frozenset(n for n, a in ALGORITHMS.items() if a.family in ("RSA", "RSA-PSS"))
    if kty in ("EC", "OKP"):
        return frozenset(n for n, a in ALGORITHMS.items() if a.curve is not None and a.curve == crv)
    return frozenset()


def _member(jwk: Mapping[str, Any], name: str) -> bytes:
    value = jwk.get(name)
    if not isinstance(value, str) or not value:
        raise JWKError(f"JWK member {name!r} is missing or not a string")
    try:
        return b64url_decode(value, f"JWK member {name!r}")
    except TokenRejected as exc:
        raise JWKError(exc.error.reason) from None


def public_key_from_jwk(jwk: Mapping[str, Any]) -> PublicKey:
    """The public key a JWK describes; :class:`JWKError` for anything bastion does not accept."""
    kty = jwk.get("kty")
    if kty == "oct":
        raise JWKError("symmetric (oct) keys are never taken from a JWK set")
    if any(name in jwk for name in _PRIVATE_MEMBERS):
        raise JWKError("JWK contains private key members")
    if kty == "OKP":
        if jwk.get("crv") != "Ed25519":
            raise JWKError("OKP key is not Ed25519")
        x = _member(jwk, "x")
        if len(x) != 32:
            raise JWKError("Ed25519 key has the wrong length")
        return Ed25519PublicKey.from_public_bytes(x)
    if kty == "EC":
        crv = jwk.get("crv")
        if not isinstance(crv, str) or crv not in _EC_CURVES:
            raise JWKError("EC key is not on P-256, P-384 or P-521")
        curve, size = _EC_CURVES[crv]
        x, y = _member(jwk, "x"), _member(jwk, "y")
        if len(x) != size or len(y) != size:
            raise JWKError("EC key coordinates have the wrong length")
        try:
            numbers = ec.EllipticCurvePublicNumbers(
                int.from_bytes(x, "big"), int.from_bytes(y, "big"), curve
            )
            return numbers.public_key()
        except ValueError:
            raise JWKError("EC key is not a point on its curve") from None
    if kty == "RSA":
        n = int.from_bytes(_member(jwk, "n"), "big")
        e = int.from_bytes(_member(jwk, "e"), "big")
        if n.bit_length() < MIN_RSA_BITS:
            raise JWKError(f"RSA key is shorter than {MIN_RSA_BITS} bits")
        if e < 3 or e % 2 == 0:
            raise JWKError("RSA key has an invalid exponent")
        try:
            return rsa.RSAPublicNumbers(e, n).public_key()
        except ValueError:
            raise JWKError("RSA key is invalid") from None
    raise JWKError("JWK kty is not EC, OKP or RSA")


def thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256) of a public key's required members."""
    kty = jwk.get("kty")
    names = {"EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x"), "RSA": ("e", "kty", "n")}
    members = {name: jwk[name] for name in names.get(str(kty), ()) if name in jwk}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return b64url_encode(hashlib.sha256(canonical).digest())


def key_from_jwk(jwk: Mapping[str, Any], allowed: frozenset[str]) -> VerificationKey:
    """A :class:`VerificationKey` for one JWK of a set, bound to ``allowed`` algorithms."""
    if not isinstance(jwk, Mapping):
        raise JWKError("JWK is not an object")
    use = jwk.get("use")
    if use is not None and use != "sig":
        raise JWKError("JWK is not for signatures (use)")
    key_ops = jwk.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        raise JWKError("JWK is not for verification (key_ops)")
    kid = jwk.get("kid")
    if kid is not None and (not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_LENGTH):
        raise JWKError("JWK kid is not a short string")
    material = public_key_from_jwk(jwk)
    crv = jwk.get("crv") if isinstance(jwk.get("crv"), str) else None
    algorithms = compatible_algorithms(str(jwk.get("kty")), crv)
    alg = jwk.get("alg")
    if alg is not None:
        if not isinstance(alg, str) or alg not in algorithms:
            raise JWKError("JWK alg does not match its key type")
        algorithms = frozenset((alg,))
    algorithms &= allowed
    if not algorithms:
        raise JWKError("JWK algorithm is not in the issuer's allowlist")
    return VerificationKey(kid, algorithms, material, thumbprint(jwk))


def jwk_from_public_key(key: PublicKey, *, kid: str, alg: str) -> dict[str, Any]:
    """The public JWK bastion publishes for one of its own signing keys."""
    if isinstance(key, Ed25519PublicKey):
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        jwk: dict[str, Any] = {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(raw)}
    elif isinstance(key, ec.EllipticCurvePublicKey):
        crv = _CURVE_NAMES[key.curve.name]
        size = _EC_CURVES[crv][1]
        numbers = key.public_numbers()
        jwk = {
            "kty": "EC",
            "crv": crv,
            "x": b64url_encode(numbers.x.to_bytes(size, "big")),
            "y": b64url_encode(numbers.y.to_bytes(size, "big")),
        }
    else:
        numbers_rsa = key.public_numbers()
        jwk = {
            "kty": "RSA",
            "n": b64url_encode(
                numbers_rsa.n.to_bytes((numbers_rsa.n.bit_length() + 7) // 8, "big")
            ),
            "e": b64url_encode(
                numbers_rsa.e.to_bytes((numbers_rsa.e.bit_length() + 7) // 8, "big")
            ),
        }
    return {**jwk, "kid": kid, "alg": alg, "use": "sig"}
