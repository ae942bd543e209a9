"""One issuer's keys, and the small contract every source of them honours.

A token's ``kid`` is only ever a key into :class:`KeySet`'s dictionary: never a path, a URL or a
query (RFC 8725 §3.10). Sources: :class:`StaticKeys` (configured keys, a shared HMAC secret),
:class:`bastion.auth.jwt.jwks.IssuerKeys` (an identity provider's JWKS) and
:class:`bastion.auth.jwt.signing.SigningKeys` (bastion's own keys).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from bastion.auth.jwt.errors import reject
from bastion.auth.jwt.jose import VerificationKey


@dataclass(frozen=True, slots=True)
class KeySet:
    """Keys by ``kid`` (several per kid only if they differ by algorithm) and keys without one."""

    by_kid: dict[str, tuple[VerificationKey, ...]] = field(default_factory=dict)
    anonymous: tuple[VerificationKey, ...] = ()

    @classmethod
    def of(cls, keys: Iterable[VerificationKey]) -> KeySet:
        by_kid: dict[str, tuple[VerificationKey, ...]] = {}
        anonymous: list[VerificationKey] = []
        for key in keys:
            if key.kid is None:
                anonymous.append(key)
            else:
                by_kid[key.kid] = (*by_kid.get(key.kid, ()), key)
        return cls(by_kid, tuple(anonymous))

    def __len__(self) -> int:
        return sum(len(keys) for keys in self.by_kid.values()) + len(self.anonymous)

    def __iter__(self) -> Iterator[VerificationKey]:
        for keys in self.by_kid.values():
            yield from keys
        yield from self.anonymous

    def identities(self) -> frozenset[tuple[str | None, str]]:
        """(kid, thumbprint) of every key: what tells a removed key from a kept one."""
        return frozenset((key.kid, key.thumbprint) for key in self)

    def find(self, kid: str | None, alg: str) -> VerificationKey | None:
        """The key for ``kid`` and ``alg``; ``None`` when ``kid`` is unknown (a refetch may help).

        Without a ``kid`` the issuer must have exactly one key for ``alg``: bastion never tries
        several keys in turn (that multiplies the work an attacker's token costs).
        """
        if kid is not None:
            keys = self.by_kid.get(kid)
            if keys is None:
                return None
            for key in keys:
                if alg in key.algorithms:
                    return key
            raise reject("the key named by kid does not allow this alg")
        candidates = [key for key in self if alg in key.algorithms]
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            return None
        raise reject("token has no kid and the issuer has several keys")


class KeySource(Protocol):
    """Where one issuer's verification keys come from.

    ``find`` is synchronous (the hot path never waits); it returns ``None`` when the ``kid`` is
    unknown, raises :class:`TokenRejected` (``auth.keys_unavailable``) when the keys are too stale
    to trust. ``refetch`` then looks again, at most once per cooldown, one fetch for all callers.
    ``revision`` changes whenever a key disappears, so cached verifications by it are redone.
    """

    @property
    def revision(self) -> int: ...

    def find(self, kid: str | None, alg: str, now: float) -> VerificationKey | None: ...

    async def refetch(self) -> bool: ...


class StaticKeys:
    """Keys fixed by configuration (public keys, or a shared HMAC secret); nothing to fetch."""

    revision = 0

    def __init__(self, keys: Iterable[VerificationKey]) -> None:
        self.keys = KeySet.of(keys)

    def find(self, kid: str | None, alg: str, now: float) -> VerificationKey | None:
        return self.keys.find(kid, alg)

    async def refetch(self) -> bool:
        return False
