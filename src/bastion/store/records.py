"""API key records and the :class:`KeyStore` contract every backend implements.

A record never holds a key's secret, only its keyed hash (see :mod:`bastion.auth.keys.hashing`).
Every change to a record takes the next value of one store-wide *revision* counter, in the same
transaction, so a gateway that remembers the last revision it saw fetches exactly what changed
since (:meth:`KeyStore.changes`): one cheap query tells it whether anything did. ``last_used_at``
is bookkeeping, written in batches, and does not move the revision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal, Protocol

KeyStatus = Literal["active", "expiring", "expired", "revoked"]


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One API key as stored. Times are seconds since the epoch (UTC).

    ``hash`` is the hex HMAC-SHA256 of the whole key; ``replaced_by`` names the key a rotation
    issued in its place (its ``expires_at`` then marks the end of the grace period).
    """

    id: str
    hash: str
    consumer: str
    created_at: float
    expires_at: float
    name: str = ""
    scopes: frozenset[str] = frozenset()
    tier: str | None = None
    revoked_at: float | None = None
    last_used_at: float | None = None
    replaced_by: str | None = None
    revision: int = 0

    def status(self, now: float, warning: float = 0.0) -> KeyStatus:
        """``revoked``, ``expired``, ``expiring`` (within ``warning`` seconds) or ``active``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at <= now:
            return "expired"
        if self.expires_at - now <= warning:
            return "expiring"
        return "active"

    def with_revision(self, revision: int) -> KeyRecord:
        return replace(self, revision=revision)


def scopes_text(scopes: frozenset[str]) -> str:
    """Scopes as stored: sorted, space-separated (scope names never contain spaces)."""
    return " ".join(sorted(scopes))


def scopes_from_text(text: str) -> frozenset[str]:
    return frozenset(text.split())


class KeyStore(Protocol):
    """Where API key records live: memory (tests), SQLite (one machine), PostgreSQL (many).

    Methods are synchronous: the store is used by the CLI and by a gateway's background sync
    thread, never on the request path. Backend failures raise
    :class:`bastion.errors.StateError` (or its :class:`~bastion.errors.BackendUnavailable`),
    never a driver's exception, and never with a connection URL in the message.
    """

    def insert(self, record: KeyRecord) -> KeyRecord:
        """Store a new record; the result carries its revision. A duplicate id is an error."""
        ...

    def get(self, key_id: str) -> KeyRecord | None: ...

    def records(self, consumer: str | None = None) -> list[KeyRecord]:
        """Every record (of ``consumer``), oldest first."""
        ...

    def revoke(self, key_id: str, at: float) -> KeyRecord | None:
        """Mark the key revoked at ``at`` (kept if already revoked); ``None`` if unknown."""
        ...

    def rotate(self, key_id: str, new: KeyRecord, grace_until: float) -> KeyRecord | None:
        """Insert ``new`` and, in the same transaction, let the key ``key_id`` expire at
        ``grace_until`` (or earlier, if it already expires sooner) and point it at ``new``.
        The updated old record, or ``None`` (and nothing inserted) if ``key_id`` is unknown."""
        ...

    def revision(self) -> int:
        """The store's current revision: it moves whenever any record changes."""
        ...

    def changes(self, since: int) -> tuple[int, list[KeyRecord]]:
        """The current revision and every record changed after revision ``since``."""
        ...

    def touch(self, used: Mapping[str, float]) -> None:
        """Record last-use times (key id -> time); never moves a time backwards."""
        ...

    def pepper_check(self, fingerprint: str) -> bool:
        """Remember ``fingerprint`` of the hashing pepper if none is stored yet; whether the
        stored one equals it (keys hashed with another pepper could never verify)."""
        ...

    def close(self) -> None: ...
