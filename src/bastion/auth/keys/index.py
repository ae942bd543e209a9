"""The gateway's in-memory view of the key store: key id -> what a request needs to decide.

Readers (the request path, on the event loop) only ever do dict lookups; the sync thread
(:mod:`.sync`) replaces entries one assignment at a time, which is atomic, so the hot path takes
no lock. An entry carries everything precomputed: the digest as bytes, the caller's
:class:`~bastion.pipeline.identity.Identity`, and the success decisions already built.

An entry also remembers ``seen``: the quick MAC (:meth:`KeyHasher.quick`) of the key that last
verified against it, so that the next request with that key skips the HMAC. It is one MAC per
key (bounded by the index), and it is forgotten with the entry: any change to the record
(revocation, rotation, a new expiry, a restored store) replaces the entry by a new one without
it. Revocation and expiry are checked on every request either way.

The record's id, expiry and revocation are copied into the entry (a compiled class) because
the request path reads them on every request, and the record (a plain dataclass) costs an
attribute lookup by name per read. An entry never changes its record: a new record is a new
entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from bastion.auth.keys.hashing import KeyHasher
from bastion.pipeline.decisions import Allow
from bastion.pipeline.identity import Identity
from bastion.store.records import KeyRecord

METHOD = "api_key"


@dataclass(slots=True, eq=False)
class KeyEntry:
    record: KeyRecord
    digest: bytes
    identity: Identity
    allows: dict[str | None, Allow] = field(default_factory=dict)
    seen: bytes | None = None
    key_id: str = ""
    expires_at: float = 0.0
    revoked: bool = False

    @classmethod
    def of(cls, record: KeyRecord) -> KeyEntry:
        identity = Identity(
            consumer=record.consumer,
            method=METHOD,
            key_id=record.id,
            scopes=record.scopes,
            tier=record.tier,
        )
        return cls(
            record,
            bytes.fromhex(record.hash),
            identity,
            key_id=record.id,
            expires_at=record.expires_at,
            revoked=record.revoked_at is not None,
        )

    def allow(self, route: str | None) -> Allow:
        """The success decision for a request on ``route`` (built once per key and route)."""
        allow = self.allows.get(route)
        if allow is None:
            record = self.record
            fields: dict[str, object] = {
                "consumer": record.consumer,
                "key_id": record.id,
                "auth_method": METHOD,
            }
            if route is not None:
                fields["route"] = route
            if record.replaced_by is not None:
                fields["replaced_by"] = record.replaced_by
            allow = self.allows[route] = Allow(event="auth.success", fields=fields)
        return allow


class KeyIndex:
    """Every key record by id, the store revision it reflects, and the hasher to verify with.

    ``loaded`` turns true after the first successful read (or once it is certain that no key
    store exists yet); until then the guard cannot decide and fails closed.
    """

    __slots__ = ("entries", "hasher", "loaded", "revision")

    def __init__(self) -> None:
        self.entries: dict[str, KeyEntry] = {}
        self.revision = 0
        self.loaded = False
        self.hasher: KeyHasher | None = None

    @property
    def has_keys(self) -> bool:
        """Whether any key was ever created (revoked and expired ones count)."""
        return bool(self.entries)

    def apply(self, revision: int, records: list[KeyRecord]) -> None:
        entries = self.entries
        for record in records:
            entries[record.id] = KeyEntry.of(record)
        self.revision = max(self.revision, revision)
        self.loaded = True

    def replace(self, revision: int, records: list[KeyRecord]) -> None:
        """Forget every entry and hold exactly ``records`` (a store restored from a backup: keys
        made after it no longer exist). One assignment, so a request sees the old or the new."""
        self.entries = {record.id: KeyEntry.of(record) for record in records}
        self.revision = revision
        self.loaded = True

    def revoke(self, key_id: str, at: float) -> bool:
        """Mark ``key_id`` revoked now (a notification arrived before the store was read)."""
        entry = self.entries.get(key_id)
        if entry is None or entry.record.revoked_at is not None:
            return False
        self.entries[key_id] = KeyEntry.of(replace(entry.record, revoked_at=at))
        return True
