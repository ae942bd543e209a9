"""Admin tokens: generated with 256 bits of entropy, configured by their SHA-256 only, checked
in constant time against every configured hash (the time taken says nothing about which, if
any, matched), and mapped to a role.

Roles nest: ``read-only`` reads (keys, consumers, signing keys, events, the dashboard);
``operator`` also creates, rotates and revokes API keys and reloads the config; ``admin`` also
rotates signing keys and reads the audit log.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from bastion.config.admin import ROLE_RANK, AdminTokenConfig

PREFIX = "bsa_"
MAX_TOKEN_LENGTH = 128


@dataclass(frozen=True, slots=True)
class Principal:
    """Who an admin call comes from: the token's configured name and role."""

    name: str
    role: str

    def may(self, role: str) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


def generate() -> str:
    """A new admin token: ``bsa_`` and 43 URL-safe characters (256 random bits)."""
    return PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenBook:
    """The configured tokens; :meth:`verify` is the only way in."""

    def __init__(self, tokens: Sequence[AdminTokenConfig]) -> None:
        self._tokens = [(t.token_hash.encode("ascii"), Principal(t.name, t.role)) for t in tokens]

    @property
    def empty(self) -> bool:
        return not self._tokens

    def admits(self, principal: Principal) -> bool:
        """Whether ``principal`` is still configured (a session outlives no removed token)."""
        return any(known == principal for _, known in self._tokens)

    def verify(self, presented: str) -> Principal | None:
        if not presented or len(presented) > MAX_TOKEN_LENGTH:
            return None
        digest = token_hash(presented).encode("ascii")
        found: Principal | None = None
        for expected, principal in self._tokens:  # every hash is compared, match or not
            if hmac.compare_digest(digest, expected):
                found = principal
        return found
