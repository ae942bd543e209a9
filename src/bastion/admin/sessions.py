"""Dashboard logins: a session id in an ``HttpOnly; SameSite=Strict`` cookie, never the token.

The login form posts the admin token once; the browser then holds only a random session id that
is worth nothing outside this process and expires after ``admin.session_ttl``. A session opens
the dashboard's own pages (reads) and nothing else: the admin API takes only the token in the
``Authorization`` header, so a forged cross-site request can never act with a session.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable

from bastion.admin.tokens import Principal

COOKIE = "bastion_admin"
MAX_SESSIONS = 1024


class Sessions:
    def __init__(self, ttl: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._by_digest: dict[str, tuple[Principal, float]] = {}

    def create(self, principal: Principal) -> str:
        self._expire()
        if len(self._by_digest) >= MAX_SESSIONS:  # the oldest login goes first
            oldest = min(self._by_digest, key=lambda d: self._by_digest[d][1])
            del self._by_digest[oldest]
        session = secrets.token_urlsafe(32)
        self._by_digest[_digest(session)] = (principal, self.clock() + self.ttl)
        return session

    def get(self, session: str) -> Principal | None:
        if not session or len(session) > 64:
            return None
        # Looked up by digest: a dict probe on the id itself could leak its prefix by timing.
        found = self._by_digest.get(_digest(session))
        if found is None:
            return None
        principal, expires = found
        if expires <= self.clock():
            self._by_digest.pop(_digest(session), None)
            return None
        return principal

    def end(self, session: str) -> None:
        self._by_digest.pop(_digest(session), None)

    def _expire(self) -> None:
        now = self.clock()
        for digest in [d for d, (_, expires) in self._by_digest.items() if expires <= now]:
            del self._by_digest[digest]

    def cookie(self, session: str) -> str:
        return f"{COOKIE}={session}; Path=/; HttpOnly; SameSite=Strict; Max-Age={int(self.ttl)}"

    @staticmethod
    def cleared() -> str:
        return f"{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"


def _digest(session: str) -> str:
    return hashlib.sha256(session.encode("utf-8")).hexdigest()


def cookie_value(header: str | None) -> str:
    """The session id from a ``Cookie`` header, or ``""``."""
    if not header:
        return ""
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return value.strip()
    return ""
