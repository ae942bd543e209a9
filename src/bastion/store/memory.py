"""The in-memory :class:`KeyStore`: the contract in its simplest form, for tests and embedding."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import replace

from bastion.errors import StateError
from bastion.store.records import KeyRecord


class MemoryKeyStore:
    """Records in a dict, guarded by a lock (a gateway's sync thread and the CLI may share it)."""

    def __init__(self) -> None:
        self._records: dict[str, KeyRecord] = {}
        self._revision = 0
        self._fingerprint: str | None = None
        self._lock = threading.Lock()

    def _put(self, record: KeyRecord) -> KeyRecord:
        self._revision += 1
        stored = self._records[record.id] = record.with_revision(self._revision)
        return stored

    def insert(self, record: KeyRecord) -> KeyRecord:
        with self._lock:
            if record.id in self._records:
                raise StateError(f"API key {record.id} already exists; expected a new key id")
            return self._put(record)

    def get(self, key_id: str) -> KeyRecord | None:
        with self._lock:
            return self._records.get(key_id)

    def records(self, consumer: str | None = None) -> list[KeyRecord]:
        with self._lock:
            records = [r for r in self._records.values() if consumer in (None, r.consumer)]
        return sorted(records, key=lambda r: (r.created_at, r.id))

    def revoke(self, key_id: str, at: float) -> KeyRecord | None:
        with self._lock:
            record = self._records.get(key_id)
            if record is None:
                return None
            if record.revoked_at is not None:
                return record
            return self._put(replace(record, revoked_at=at))

    def rotate(self, key_id: str, new: KeyRecord, grace_until: float) -> KeyRecord | None:
        with self._lock:
            old = self._records.get(key_id)
            if old is None:
                return None
            if new.id in self._records:
                raise StateError(f"API key {new.id} already exists; expected a new key id")
            self._put(new)
            expires = min(old.expires_at, grace_until)
            return self._put(replace(old, expires_at=expires, replaced_by=new.id))

    def revision(self) -> int:
        with self._lock:
            return self._revision

    def changes(self, since: int) -> tuple[int, list[KeyRecord]]:
        with self._lock:
            changed = [r for r in self._records.values() if r.revision > since]
            return self._revision, sorted(changed, key=lambda r: r.revision)

    def touch(self, used: Mapping[str, float]) -> None:
        with self._lock:
            for key_id, at in used.items():
                record = self._records.get(key_id)
                if record is not None and (record.last_used_at or 0.0) < at:
                    self._records[key_id] = replace(record, last_used_at=at)

    def pepper_check(self, fingerprint: str) -> bool:
        with self._lock:
            if self._fingerprint is None:
                self._fingerprint = fingerprint
            return self._fingerprint == fingerprint

    def close(self) -> None:
        return None
