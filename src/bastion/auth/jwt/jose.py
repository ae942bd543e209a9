"""Compact JWS: strict parsing and signature verification with ``cryptography`` (RFC 7515, 8725).

Parsing is apart from policy: :func:`parse_compact` only takes a token apart, refusing anything
that is not one plain, small, signed JSON object; :func:`verify_signature` checks one signature
with one key; which key and which claims are acceptable is the verifier's and the policy's job.

Defences here (each has a regression test in ``tests/advisories/test_rfc8725_*.py``):

- size caps on the whole token and the header, a nesting cap on the JSON, before any decoding;
- base64url without padding and in its one canonical form; UTF-8 JSON objects only, with no
  duplicate member names and no ``NaN``/``Infinity``;
- ``alg`` must be one this module implements; ``none`` (in any letter case) is refused;
- headers that carry or locate keys (``jku``, ``x5u``, ``jwk``, ``x5c``), ``crit`` (no extension
  is understood), ``b64``, ``zip`` and ``enc`` are refused: keys come from configuration only;
- ``kid`` is an opaque, length-capped string used as a dictionary key and nothing else;
- a key verifies only the algorithms it is bound to (one family per key: an HMAC secret never
  verifies an RSA/EC algorithm and a public key never verifies an HMAC);
- signatures must have the exact length their algorithm produces.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from bastion.auth.jwt.errors import reject

Family = Literal["EdDSA", "EC", "RSA", "RSA-PSS", "HMAC"]


@dataclass(frozen=True, slots=True)
class Algorithm:
    name: str
    family: Family
    hash_name: str | None  # sha256 / sha384 / sha512; None for EdDSA
    signature_length: int | None  # exact bytes for EdDSA, ECDSA and HMAC; RSA: the modulus size
    curve: str | None = None  # JWK crv the key must have (ECDSA, EdDSA)


ALGORITHMS: Mapping[str, Algorithm] = {
    "EdDSA": Algorithm("EdDSA", "EdDSA", None, 64, "Ed25519"),
    "ES256": Algorithm("ES256", "EC", "sha256", 64, "P-256"),
    "ES384": Algorithm("ES384", "EC", "sha384", 96, "P-384"),
    "ES512": Algorithm("ES512", "EC", "sha512", 132, "P-521"),
    "RS256": Algorithm("RS256", "RSA", "sha256", None),
    "RS384": Algorithm("RS384", "RSA", "sha384", None),
    "RS512": Algorithm("RS512", "RSA", "sha512", None),
    "PS256": Algorithm("PS256", "RSA-PSS", "sha256", None),
    "PS384": Algorithm("PS384", "RSA-PSS", "sha384", None),
    "PS512": Algorithm("PS512", "RSA-PSS", "sha512", None),
    "HS256": Algorithm("HS256", "HMAC", "sha256", 32),
    "HS384": Algorithm("HS384", "HMAC", "sha384", 48),
    "HS512": Algorithm("HS512", "HMAC", "sha512", 64),
}
ASYMMETRIC = frozenset(name for name, a in ALGORITHMS.items() if a.family != "HMAC")
HMAC_ALGORITHMS = frozenset(name for name, a in ALGORITHMS.items() if a.family == "HMAC")

_HASHES: Mapping[str, hashes.HashAlgorithm] = {
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}
_FORBIDDEN_HEADERS = ("jku", "x5u", "jwk", "x5c", "crit", "b64", "zip", "enc")
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")
MAX_KID_LENGTH = 256
MIN_RSA_BITS = 2048


@dataclass(frozen=True, slots=True)
class Limits:
    """Hard caps checked before any decoding or crypto (RFC 8725 §3.x: bounded work per token)."""

    max_token_bytes: int = 8192
    max_header_bytes: int = 1024
    max_json_depth: int = 8


DEFAULT_LIMITS = Limits()

PublicKey = Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey
PrivateKey = Ed25519PrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True, slots=True, eq=False)
class VerificationKey:
    """One key and the algorithms it may verify (RFC 8725 §3.1: one algorithm family per key).

    ``material`` is a public key, or for HMAC the shared secret bytes (only ever from
    configuration, never from a JWKS). ``algorithms`` is fixed when the key is made, from the
    JWK's ``alg`` or its type, intersected with the issuer's allowlist. ``thumbprint`` (RFC 7638
    for JWKs) tells a key apart from another with the same ``kid``.
    """

    kid: str | None
    algorithms: frozenset[str]
    material: PublicKey | bytes = field(repr=False)
    thumbprint: str = ""


@dataclass(frozen=True, slots=True)
class JWS:
    """A compact JWS taken apart; nothing in it is trusted until a key verified ``signature``."""

    header: Mapping[str, Any]
    claims: Mapping[str, Any]
    signing_input: bytes
    signature: bytes
    alg: str
    kid: str | None
    typ: str | None


def b64url_decode(part: str, what: str) -> bytes:
    """Strict base64url (RFC 7515 §2): the URL-safe alphabet, no padding, the canonical form."""
    if len(part) % 4 == 1 or not _B64URL.fullmatch(part):
        raise reject(f"{what} is not base64url")
    raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    if b64url_encode(raw) != part:
        raise reject(f"{what} is not canonical base64url")
    return raw


def b64url_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise reject("duplicate JSON member name")
    return obj


def _no_constants(name: str) -> Any:
    raise reject("NaN or Infinity in JSON")


_DECODER = json.JSONDecoder(object_pairs_hook=_unique_members, parse_constant=_no_constants)


def json_depth_within(text: str, limit: int) -> bool:
    """Whether ``text`` nests arrays/objects at most ``limit`` deep (strings ignored)."""
    if text.count("[") + text.count("{") <= limit:
        return True  # the common case, without the regex pass
    depth = 0
    for bracket in _BRACKETS.findall(_STRING.sub("", text)):
        if bracket in "[{":
            depth += 1
            if depth > limit:
                return False
        else:
            depth -= 1
    return True


def load_json_object(raw: bytes, what: str, max_depth: int) -> dict[str, Any]:
    """A JSON object from UTF-8 ``raw``: no duplicate names, no NaN, nesting capped."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise reject(f"{what} is not UTF-8") from None
    if not json_depth_within(text, max_depth):
        raise reject(f"{what} nests too deeply")
    try:
        value = _DECODER.decode(text)
    except (ValueError, RecursionError):  # JSONDecodeError is a ValueError; so are huge ints
        raise reject(f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise reject(f"{what} is not a JSON object")
    return value


def parse_compact(token: str, limits: Limits = DEFAULT_LIMITS) -> JWS:
    """Take a compact JWS apart, refusing whatever RFC 8725 says not to trust (no crypto yet)."""
    if not isinstance(token, str):
        raise reject("token is not a string")
    if len(token) > limits.max_token_bytes:
        raise reject("token exceeds the size limit")
    if not token.isascii():
        raise reject("token is not ASCII")
    parts = token.split(".")
    if len(parts) == 5:
        raise reject("encrypted tokens (JWE) are not accepted")
    if len(parts) != 3:
        raise reject("token is not a compact JWS")
    header_b64, payload_b64, signature_b64 = parts
    if len(header_b64) > (limits.max_header_bytes * 4 + 2) // 3:
        raise reject("header exceeds the size limit")
    if not signature_b64:
        raise reject("token is unsigned")
    header = load_json_object(b64url_decode(header_b64, "header"), "header", 2)
    for name in _FORBIDDEN_HEADERS:
        if name in header:
            raise reject(f"header parameter {name!r} is refused")
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise reject("header has no alg")
    if alg.lower() == "none":
        raise reject("alg none is refused")
    algorithm = ALGORITHMS.get(alg)
    if algorithm is None:
        raise reject("alg is not supported")
    kid = header.get("kid")
    if "kid" in header and (not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_LENGTH):
        raise reject("kid is not a short string")
    typ = header.get("typ")
    if "typ" in header and not isinstance(typ, str):
        raise reject("typ is not a string")
    signature = b64url_decode(signature_b64, "signature")
    if algorithm.signature_length is not None and len(signature) != algorithm.signature_length:
        raise reject("signature has the wrong length")
    claims = load_json_object(
        b64url_decode(payload_b64, "payload"), "payload", limits.max_json_depth
    )
    signing_input = f"{header_b64}.{payload_b64}".encode("ascii")
    return JWS(header, claims, signing_input, signature, alg, kid, typ)


def verify_signature(jws: JWS, key: VerificationKey) -> bool:
    """Whether ``key`` is allowed to verify ``jws.alg`` and the signature is its own."""
    if jws.alg not in key.algorithms:
        return False
    algorithm = ALGORITHMS[jws.alg]
    material = key.material
    data, signature = jws.signing_input, jws.signature
    try:
        if algorithm.family == "HMAC":
            if not isinstance(material, bytes):
                return False
            digest = hmac.new(material, data, algorithm.hash_name or "sha256").digest()
            return hmac.compare_digest(digest, signature)
        if isinstance(material, bytes):
            return False  # a secret never verifies an asymmetric algorithm
        if algorithm.family == "EdDSA":
            if not isinstance(material, Ed25519PublicKey):
                return False
            material.verify(signature, data)
            return True
        hash_algorithm = _HASHES[algorithm.hash_name or "sha256"]
        if algorithm.family == "EC":
            if not isinstance(material, ec.EllipticCurvePublicKey):
                return False
            if material.curve.name != _CURVES[algorithm.curve or ""]:
                return False
            half = len(signature) // 2
            der = encode_dss_signature(
                int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big")
            )
            material.verify(der, data, ec.ECDSA(hash_algorithm))
            return True
        if not isinstance(material, rsa.RSAPublicKey):
            return False
        if len(signature) != (material.key_size + 7) // 8:
            return False
        if algorithm.family == "RSA":
            material.verify(signature, data, padding.PKCS1v15(), hash_algorithm)
        else:
            pss = padding.PSS(padding.MGF1(hash_algorithm), hash_algorithm.digest_size)
            material.verify(signature, data, pss, hash_algorithm)
        return True
    except InvalidSignature:
        return False


_CURVES = {"P-256": "secp256r1", "P-384": "secp384r1", "P-521": "secp521r1"}


def sign_compact(
    header: Mapping[str, Any], claims: Mapping[str, Any], key: PrivateKey, alg: str
) -> str:
    """A compact JWS of ``claims`` signed by ``key`` (bastion's own keys: EdDSA or ES256/384)."""
    algorithm = ALGORITHMS[alg]
    head = b64url_encode(orjson.dumps({**header, "alg": alg}))
    body = b64url_encode(orjson.dumps(claims))
    data = f"{head}.{body}".encode("ascii")
    if algorithm.family == "EdDSA" and isinstance(key, Ed25519PrivateKey):
        signature = key.sign(data)
    elif algorithm.family == "EC" and isinstance(key, ec.EllipticCurvePrivateKey):
        der = key.sign(data, ec.ECDSA(_HASHES[algorithm.hash_name or "sha256"]))
        r, s = decode_dss_signature(der)
        size = (algorithm.signature_length or 64) // 2
        signature = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    else:
        raise ValueError(f"bastion signs with EdDSA or ECDSA keys, not {alg} with this key")
    return f"{head}.{body}.{b64url_encode(signature)}"


def is_number(value: object) -> bool:
    """A JSON number usable as a NumericDate: int or finite float, never bool."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value)


def secret_fingerprint(secret: bytes) -> str:
    """A non-reversible id for a shared secret (so two keys can be told apart in logs)."""
    return b64url_encode(hashlib.sha256(b"bastion-hmac-key\0" + secret).digest()[:12])
