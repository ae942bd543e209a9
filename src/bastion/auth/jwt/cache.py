"""Verified tokens, remembered so that a signature is checked once per token, not per request.

Keyed by the BLAKE2b-256 of the token's signature segment, and an entry counts only for a token
whose signed part (``header.payload``, kept in the entry) is byte for byte the one verified: so
every byte of the token is bound, while only the short signature is hashed per request (the
signed part is compared, not hashed). The cache never holds a bearer token itself (the signed
part without its signature proves nothing). Bounded in entries (oldest evicted first), every
entry ending at the token's ``exp``. A hit is re-checked against
revocation (``jti`` or subject) and against the issuer's key revision: when a key leaves an
issuer's set, tokens it signed are verified again, and refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from hashlib import blake2b
from typing import Any, Final, Protocol

from bastion.pipeline.identity import Identity

# BLAKE2b-256 rather than SHA-256: one compression for a signature of up to 128 bytes, and no
# per-call digest set-up (a copy of an empty state). Equally one-way: the key never gives the
# signature back.
_new_hash: Final[Callable[[], blake2b]] = blake2b(digest_size=32).copy


@dataclass(frozen=True, slots=True, eq=False)
class VerifiedToken:
    """A token whose signature and claims held. ``identity`` is what guards put in state."""

    issuer: str
    claims: Mapping[str, Any]
    header: Mapping[str, Any]
    expires_at: float
    identity: Identity
    kid: str | None = None
    revision: int = 0
    valid_until: float = field(default=0.0)  # exp + leeway: when a cached entry stops counting
    signed: bytes = b""  # the token's header.payload as received: what a cache hit must equal

    @property
    def subject(self) -> str | None:
        sub = self.claims.get("sub")
        return sub if isinstance(sub, str) else None

    @property
    def jti(self) -> str | None:
        jti = self.claims.get("jti")
        return jti if isinstance(jti, str) else None

    @property
    def scopes(self) -> frozenset[str]:
        return self.identity.scopes


class Revocations(Protocol):
    """Which verified tokens no longer count. Synchronous: it runs on every cache hit, so an
    implementation keeps its answer in memory (a shared one is pushed to it, e.g. over Redis).
    """

    def is_revoked(self, token: VerifiedToken) -> bool: ...


class MemoryRevocations:
    """Revoked ``jti`` values (each kept until the token's ``exp``) and revoked subjects (every
    token of that issuer and subject issued at or before the revocation)."""

    def __init__(self) -> None:
        self._jtis: dict[tuple[str, str], float] = {}
        self._subjects: dict[tuple[str, str], float] = {}

    def revoke_jti(self, issuer: str, jti: str, *, expires_at: float) -> None:
        self._jtis[(issuer, jti)] = expires_at

    def revoke_subject(self, issuer: str, subject: str, *, at: float) -> None:
        self._subjects[(issuer, subject)] = at

    def prune(self, now: float) -> None:
        """Forget revoked ``jti`` values whose tokens have expired anyway."""
        self._jtis = {key: exp for key, exp in self._jtis.items() if exp > now}

    def is_revoked(self, token: VerifiedToken) -> bool:
        if not (self._jtis or self._subjects):
            return False
        jti = token.jti
        if jti is not None and (token.issuer, jti) in self._jtis:
            return True
        sub = token.subject
        if sub is not None:
            at = self._subjects.get((token.issuer, sub))
            if at is not None:
                iat = token.claims.get("iat")
                return not isinstance(iat, int | float) or iat <= at
        return False


class NoRevocations:
    def is_revoked(self, token: VerifiedToken) -> bool:
        return False


def token_parts(token: str | bytes) -> tuple[bytes, bytes]:
    """The cache key of a token (the BLAKE2b-256 of its signature segment, the part after the
    last ``.``) and its signed part (everything before that ``.``), which a hit must equal. A
    token given as bytes (straight from a header) is taken as it is."""
    raw = token if isinstance(token, bytes) else token.encode("utf-8", "surrogatepass")
    dot = raw.rfind(b".")
    digest = _new_hash()
    if dot < 0:
        digest.update(raw)
        return digest.digest(), b"\x00"  # no signed part: can never equal an entry's
    digest.update(raw[dot + 1 :])
    return digest.digest(), raw[:dot]


def token_key(token: str | bytes) -> bytes:
    """The cache key of a token (see :func:`token_parts`); the token itself is never stored."""
    return token_parts(token)[0]


class TokenCache:
    """A bounded map from token hash to :class:`VerifiedToken`, entries ending at ``exp``."""

    def __init__(self, max_entries: int = 10_000) -> None:
        if max_entries < 0:
            raise ValueError("max_entries cannot be negative")
        self.max_entries = max_entries
        self._entries: dict[bytes, VerifiedToken] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes, signed: bytes, now: float) -> VerifiedToken | None:
        """The entry for ``key`` if it is still within its token's lifetime and was verified
        for exactly ``signed`` (another payload under a copied signature is a miss, and the
        verifier then refuses it: its signature does not verify)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if now >= entry.valid_until:
            del self._entries[key]
            return None
        if entry.signed != signed:
            return None
        return entry

    def put(self, key: bytes, token: VerifiedToken, now: float) -> None:
        if self.max_entries == 0:
            return
        entries = self._entries
        if len(entries) >= self.max_entries and key not in entries:
            self._evict(now)
        entries[key] = token

    def discard(self, key: bytes) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

    def _evict(self, now: float) -> None:
        """Drop expired entries; if none were, drop the oldest tenth (insertion order)."""
        entries = self._entries
        expired = [k for k, v in entries.items() if now >= v.valid_until]
        for key in expired:
            del entries[key]
        if len(entries) >= self.max_entries:
            for key in list(entries)[: max(1, self.max_entries // 10)]:
                del entries[key]
