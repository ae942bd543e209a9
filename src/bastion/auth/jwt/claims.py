"""Claims policy: what a verified token must say before bastion believes it (RFC 7519 §4.1, 9068).

Checked only after the signature verified. Time comes in as ``now`` (seconds since the epoch)
so that tests never wait; ``leeway`` absorbs clock skew between issuer and gateway.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bastion.auth.jwt.errors import EXPIRED_TOKEN, NOT_YET_VALID, reject
from bastion.auth.jwt.jose import is_number

ALWAYS_REQUIRED = frozenset({"iss", "aud", "exp"})


@dataclass(frozen=True, slots=True)
class ClaimsPolicy:
    """The rules for one kind of token from one issuer.

    ``audiences``: the token's ``aud`` (a string or a list) must name at least one of them.
    ``token_type``: when set, the header ``typ`` must equal it, compared as RFC 7515 §4.1.9 says
    (case-insensitive, an ``application/`` prefix optional), e.g. ``at+jwt`` for RFC 9068.
    ``required``: claims that must be present on top of ``iss``, ``aud`` and ``exp``.
    ``max_lifetime``: when set, ``exp - iat`` (``iat`` then required) may not exceed it.
    """

    issuer: str
    audiences: frozenset[str]
    leeway: float = 30.0
    token_type: str | None = None
    required: frozenset[str] = frozenset()
    max_lifetime: float | None = None

    def __post_init__(self) -> None:
        if not self.audiences:
            raise ValueError("a claims policy needs at least one accepted audience (RFC 9700)")
        if self.leeway < 0:
            raise ValueError("leeway cannot be negative")


def _type_matches(typ: str | None, expected: str) -> bool:
    if typ is None:
        return False
    typ = typ.lower()
    if typ.startswith("application/"):
        typ = typ[len("application/") :]
    expected = expected.lower()
    if expected.startswith("application/"):
        expected = expected[len("application/") :]
    return typ == expected


def _time_claim(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        if name in claims:
            raise reject(f"{name} is null")
        return None
    if not is_number(value):
        raise reject(f"{name} is not a number")
    return float(value)


def check_claims(
    claims: Mapping[str, Any], typ: str | None, policy: ClaimsPolicy, *, now: float
) -> float:
    """Raise :class:`TokenRejected` unless ``claims`` satisfy ``policy`` at ``now``.

    Returns the token's ``exp``, the moment a cached verification of it stops counting.
    """
    if policy.token_type is not None and not _type_matches(typ, policy.token_type):
        raise reject("typ is not the expected token type")
    for name in ALWAYS_REQUIRED | policy.required:
        if claims.get(name) is None:
            raise reject(f"required claim {name} is missing")
    if claims["iss"] != policy.issuer:
        raise reject("iss is not the expected issuer")
    aud = claims["aud"]
    if isinstance(aud, str):
        audiences = (aud,)
    elif isinstance(aud, list) and aud and all(isinstance(a, str) for a in aud):
        audiences = tuple(aud)
    else:
        raise reject("aud is not a string or a list of strings")
    if policy.audiences.isdisjoint(audiences):
        raise reject("aud does not name this API")
    leeway = policy.leeway
    exp = _time_claim(claims, "exp")
    if exp is None:
        raise reject("required claim exp is missing")
    if now >= exp + leeway:
        raise reject("exp has passed", EXPIRED_TOKEN)
    nbf = _time_claim(claims, "nbf")
    if nbf is not None and now + leeway < nbf:
        raise reject("nbf is in the future", NOT_YET_VALID)
    iat = _time_claim(claims, "iat")
    if iat is not None and now + leeway < iat:
        raise reject("iat is in the future")
    if policy.max_lifetime is not None:
        if iat is None:
            raise reject("required claim iat is missing")
        if exp - iat > policy.max_lifetime:
            raise reject("token lifetime exceeds the maximum")
    for name in ("sub", "jti", "client_id"):
        value = claims.get(name)
        if value is not None and (not isinstance(value, str) or not value):
            raise reject(f"{name} is not a non-empty string")
    scope = claims.get("scope")
    if scope is not None and not isinstance(scope, str):
        raise reject("scope is not a string")
    scp = claims.get("scp")
    if scp is not None and not (
        isinstance(scp, str) or (isinstance(scp, list) and all(isinstance(s, str) for s in scp))
    ):
        raise reject("scp is not a string or a list of strings")
    return exp


def scopes_of(claims: Mapping[str, Any]) -> frozenset[str]:
    """Scopes from ``scope`` (RFC 9068/8693, space-separated) or ``scp`` (a list or a string)."""
    scope = claims.get("scope")
    if isinstance(scope, str):
        return frozenset(scope.split())
    scp = claims.get("scp")
    if isinstance(scp, str):
        return frozenset(scp.split())
    if isinstance(scp, list):
        return frozenset(s for s in scp if isinstance(s, str))
    return frozenset()
