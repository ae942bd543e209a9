"""The key index's memory of verified keys (``KeyEntry.seen``): a key that verified before is
recognised by its quick MAC instead of the HMAC, and every change to its record (revocation,
rotation, expiry, a restored store) still refuses it at once."""

from __future__ import annotations

import pytest

from bastion.auth.apikey import ApiKeyGuard, KeyFailure
from bastion.auth.keys.format import checksum
from bastion.auth.keys.hashing import KeyHasher
from bastion.auth.keys.index import KeyEntry
from bastion.auth.keys.manager import KeyManager
from bastion.config.loader import build_config
from bastion.observability.events import MemorySink
from bastion.store import MemoryKeyStore
from tests.auth.helpers import DAY, PEPPER, FakeClock


@pytest.fixture
def guard(memory_store: MemoryKeyStore, hasher: KeyHasher, clock: FakeClock) -> ApiKeyGuard:
    config = build_config({}, "test")
    return ApiKeyGuard.from_config(
        config, MemorySink(), clock=clock, opener=lambda: (memory_store, hasher), start=False
    )


def entry_of(guard: ApiKeyGuard, key_id: str) -> KeyEntry:
    return guard.index.entries[key_id]


def verify(guard: ApiKeyGuard, secret: str, clock: FakeClock) -> KeyEntry | KeyFailure:
    return guard.authenticate(secret, clock())


def test_a_verified_key_is_remembered_by_its_quick_mac_only(
    guard: ApiKeyGuard, keys: KeyManager, hasher: KeyHasher, clock: FakeClock
) -> None:
    issued = keys.create("acme")
    guard.sync.refresh()
    assert entry_of(guard, issued.record.id).seen is None
    assert verify(guard, issued.secret, clock) is entry_of(guard, issued.record.id)
    seen = entry_of(guard, issued.record.id).seen
    assert seen == hasher.quick(issued.secret)
    assert seen != hasher.digest(issued.secret)
    assert issued.secret.encode() not in seen
    # Another process (another random quick key) never shares the memo.
    assert KeyHasher(PEPPER).quick(issued.secret) != seen


def test_a_remembered_key_is_recognised_without_the_hmac(
    guard: ApiKeyGuard, keys: KeyManager, clock: FakeClock
) -> None:
    issued = keys.create("acme")
    guard.sync.refresh()
    entry = entry_of(guard, issued.record.id)
    assert verify(guard, issued.secret, clock) is entry
    entry.digest = bytes(32)  # the HMAC would now refuse: only the memo can accept
    assert verify(guard, issued.secret, clock) is entry


def test_a_wrong_secret_for_a_remembered_id_is_refused_and_changes_nothing(
    guard: ApiKeyGuard, keys: KeyManager, clock: FakeClock
) -> None:
    issued = keys.create("acme")
    other = keys.create("other")
    guard.sync.refresh()
    assert type(verify(guard, issued.secret, clock)) is KeyEntry
    seen = entry_of(guard, issued.record.id).seen
    # The other key's secret under this key's id (checksum fixed up): a well-formed wrong key.
    body = issued.secret[:17] + other.secret[17:-6]
    forged = body + checksum(body)
    failure = verify(guard, forged, clock)
    assert failure == KeyFailure("wrong_secret", issued.record.id, "acme")
    assert entry_of(guard, issued.record.id).seen == seen
    last = "x" if issued.secret[-1] != "x" else "y"  # a changed checksum, never the same one
    assert verify(guard, issued.secret[:-1] + last, clock) == KeyFailure("malformed")


def test_revocation_forgets_the_memo_and_refuses_at_once(
    guard: ApiKeyGuard, keys: KeyManager, clock: FakeClock
) -> None:
    issued = keys.create("acme")
    guard.sync.refresh()
    assert type(verify(guard, issued.secret, clock)) is KeyEntry
    keys.revoke(issued.record.id)
    guard.sync.refresh()  # the periodic store read
    assert entry_of(guard, issued.record.id).seen is None
    revoked = KeyFailure("revoked", issued.record.id, "acme")
    assert verify(guard, issued.secret, clock) == revoked
    assert verify(guard, issued.secret, clock) == revoked  # remembered, still revoked


def test_a_revocation_notice_refuses_a_remembered_key_before_the_store_is_read(
    guard: ApiKeyGuard, keys: KeyManager, clock: FakeClock
) -> None:
    issued = keys.create("acme")
    guard.sync.refresh()
    assert type(verify(guard, issued.secret, clock)) is KeyEntry
    guard.sync.on_message("revoke", issued.record.id)  # what the Redis listener does
    assert verify(guard, issued.secret, clock) == KeyFailure("revoked", issued.record.id, "acme")


def test_expiry_refuses_a_remembered_key(
    guard: ApiKeyGuard, keys: KeyManager, clock: FakeClock
) -> None:
    issued = keys.create("acme", expires_in=DAY)
    guard.sync.refresh()
    assert type(verify(guard, issued.secret, clock)) is KeyEntry
    clock.advance(DAY)
    failure = verify(guard, issued.secret, clock)
    assert isinstance(failure, KeyFailure)
    assert failure.reason == "expired"


def test_rotation_ends_a_remembered_key_at_the_end_of_its_grace(
    guard: ApiKeyGuard, keys: KeyManager, clock: FakeClock
) -> None:
    old = keys.create("acme")
    guard.sync.refresh()
    assert type(verify(guard, old.secret, clock)) is KeyEntry
    rotation = keys.rotate(old.record.id, grace=3600)
    guard.sync.refresh()
    assert entry_of(guard, old.record.id).seen is None  # the record changed: a new entry
    assert type(verify(guard, old.secret, clock)) is KeyEntry  # within the grace
    assert type(verify(guard, rotation.new.secret, clock)) is KeyEntry
    clock.advance(3600)
    failure = verify(guard, old.secret, clock)
    assert isinstance(failure, KeyFailure)
    assert failure.reason == "expired"
    assert type(verify(guard, rotation.new.secret, clock)) is KeyEntry


def test_a_restored_store_forgets_every_memo(
    guard: ApiKeyGuard, keys: KeyManager, clock: FakeClock
) -> None:
    issued = keys.create("acme")
    guard.sync.refresh()
    assert type(verify(guard, issued.secret, clock)) is KeyEntry
    records = list(guard.index.entries.values())
    guard.index.replace(guard.index.revision, [e.record for e in records])
    assert entry_of(guard, issued.record.id).seen is None
    assert type(verify(guard, issued.secret, clock)) is KeyEntry


def test_the_memory_is_one_mac_per_key(
    guard: ApiKeyGuard, keys: KeyManager, clock: FakeClock
) -> None:
    made = [keys.create(f"c{i}") for i in range(5)]
    guard.sync.refresh()
    for _ in range(3):
        for issued in made:
            assert type(verify(guard, issued.secret, clock)) is KeyEntry
    assert len(guard.index.entries) == 5
    assert all(entry.seen is not None for entry in guard.index.entries.values())
