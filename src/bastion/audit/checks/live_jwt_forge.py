"""The JWT mechanics the live JWT checks build on: the operator's token taken apart, tokens
signed with HMAC or with the audit's own RSA key, public keys from a JWKS in the forms a
confused verifier might use as an HMAC secret, and the offline guess of a weak HMAC key.

Nothing here sends a request; ``live_jwt`` decides what to send.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa

from bastion.audit.checks.live_support import b64decode, b64encode, credential_value, is_jwt
from bastion.audit.context import LiveContext
from bastion.audit.model import Registry

WEAK_SECRETS = (
    "secret", "password", "changeme", "your-256-bit-secret", "your-secret-key", "secretkey",
    "secret-key", "secret_key", "jwt_secret", "jwtsecret", "jwt-secret", "key", "test",
    "admin", "123456", "12345678", "supersecret", "mysecret", "default", "s3cr3t", "qwerty",
    "letmein", "development", "dev", "example", "your_jwt_secret", "secret123", "token",
    "shhhhh", "keyboard cat", "changeit", "hello", "abc123", "",
)  # fmt: skip
HS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


@dataclass(frozen=True, slots=True)
class Token:
    """The operator's working JWT: where it travels and its parts."""

    header_name: str
    prefix: str  # "Bearer " or ""
    raw: str
    header: Mapping[str, Any]
    claims: Mapping[str, Any]

    @property
    def segments(self) -> list[str]:
        return self.raw.split(".")

    def sent(self, token: str) -> tuple[tuple[str, str], ...]:
        return ((self.header_name, self.prefix + token),)


def working_token(ctx: LiveContext) -> Token | None:
    for name, value in ctx.auth:
        token = credential_value(value)
        if not is_jwt(token):
            continue
        prefix = value[: len(value) - len(token)]
        head, payload, _ = token.split(".")
        try:
            header = orjson.loads(b64decode(head))
            claims = orjson.loads(b64decode(payload))
        except (ValueError, orjson.JSONDecodeError):
            continue
        if isinstance(header, dict) and isinstance(claims, dict):
            return Token(name, prefix, token, header, claims)
    return None


def encode(header: Mapping[str, Any], claims: Mapping[str, Any] | str) -> str:
    body = claims if isinstance(claims, str) else b64encode(orjson.dumps(claims))
    return b64encode(orjson.dumps(header)) + "." + body


def sign_hs(header: Mapping[str, Any], claims: Mapping[str, Any] | str, key: bytes) -> str:
    digest = HS.get(str(header.get("alg")), hashlib.sha256)
    signing_input = encode(header, claims)
    mac = hmac.new(key, signing_input.encode(), digest).digest()
    return signing_input + "." + b64encode(mac)


def attacker_key(ctx: LiveContext) -> rsa.RSAPrivateKey:
    if "live_jwt.attacker" not in ctx.memo:
        ctx.memo["live_jwt.attacker"] = rsa.generate_private_key(
            public_exponent=65537, key_size=2048
        )
    key: rsa.RSAPrivateKey = ctx.memo["live_jwt.attacker"]
    return key


def sign_rs(
    header: Mapping[str, Any], claims: Mapping[str, Any] | str, key: rsa.RSAPrivateKey
) -> str:
    signing_input = encode(header, claims)
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + b64encode(signature)


def public_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, str]:
    numbers = key.public_key().public_numbers()

    def b64int(value: int) -> str:
        return b64encode(value.to_bytes((value.bit_length() + 7) // 8, "big"))

    return {"kty": "RSA", "kid": kid, "n": b64int(numbers.n), "e": b64int(numbers.e)}


PublicKey = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
)


def public_key(jwk: Mapping[str, Any]) -> PublicKey | None:
    def integer(name: str) -> int:
        return int.from_bytes(b64decode(str(jwk[name])), "big")

    try:
        if jwk.get("kty") == "RSA":
            return rsa.RSAPublicNumbers(integer("e"), integer("n")).public_key()
        if jwk.get("kty") == "EC":
            curves = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1()}
            curve = curves[str(jwk.get("crv"))]
            return ec.EllipticCurvePublicNumbers(integer("x"), integer("y"), curve).public_key()
        if jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519":
            return ed25519.Ed25519PublicKey.from_public_bytes(b64decode(str(jwk["x"])))
        if jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed448":
            return ed448.Ed448PublicKey.from_public_bytes(b64decode(str(jwk["x"])))
    except (KeyError, ValueError):
        return None
    return None


def secret_forms(jwk: Mapping[str, Any]) -> list[bytes]:
    """What a confused verifier might use as its HMAC secret: the key's PEM (with and without
    the final newline; PKCS#1 too for RSA), and an OKP key's raw bytes."""
    public = public_key(jwk)
    if public is None:
        return []
    spki = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forms = [spki, spki.rstrip(b"\n")]
    if isinstance(public, rsa.RSAPublicKey):
        forms.append(
            public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
        )
    if isinstance(public, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        forms.append(
            public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        )
    return forms


def guessed_secret(token: Token) -> str | None:
    digest = HS.get(str(token.header.get("alg")))
    if digest is None:
        return None
    head, payload, signature = token.segments
    try:
        expected = b64decode(signature)
    except ValueError:
        return None
    signing_input = f"{head}.{payload}".encode()
    for secret in WEAK_SECRETS:
        mac = hmac.new(secret.encode(), signing_input, digest).digest()
        if hmac.compare_digest(mac, expected):
            return secret
    return None


def register(registry: Registry) -> None:
    """No checks here: the token mechanics ``live_jwt`` uses."""
