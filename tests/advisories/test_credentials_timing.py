"""Advisory: comparing a presented secret with ``==`` stops at the first differing byte, so
response times tell an attacker how much of a guess was right. bastion compares keyed hashes
with ``hmac.compare_digest`` on every path, including a key id that does not exist (compared
against a dummy digest), so timing also does not tell which key ids exist. The quick MAC that
recognises a key seen before is compared the same way, on every path, whether or not the key
was seen (against a dummy when not)."""

from __future__ import annotations

import hmac
from collections.abc import Callable

import pytest

from bastion.auth import apikey
from bastion.auth.apikey import ApiKeyGuard
from bastion.auth.keys.format import checksum, generate
from bastion.auth.keys.hashing import KeyHasher
from bastion.auth.keys.index import KeyIndex
from bastion.auth.keys.manager import KeyManager
from bastion.auth.keys.sync import KeySync
from bastion.config.loader import build_config
from bastion.observability.events import MemorySink
from bastion.pipeline.decisions import Allow, Deny
from bastion.pipeline.request import ClientAddress, Headers, Request
from bastion.store import MemoryKeyStore
from tests.auth.helpers import PEPPER, FakeClock


def request(key: str) -> Request:
    return Request(
        method="GET",
        path="/",
        query="",
        headers=Headers([(b"x-api-key", key.encode())]),
        client=ClientAddress("127.0.0.1", 1),
    )


def guard() -> tuple[ApiKeyGuard, str]:
    store, hasher, clock = MemoryKeyStore(), KeyHasher(PEPPER), FakeClock()
    issued = KeyManager(build_config({}, "t"), clock=clock, store=store, hasher=hasher).create("a")
    sync = KeySync(KeyIndex(), lambda: (store, hasher), interval=1.0, clock=clock)
    sync.refresh()
    return ApiKeyGuard(sync, MemorySink(), clock=clock), issued.secret


def forged(secret: str) -> str:
    body = secret[:17] + generate().secret[17:49]
    return body + checksum(body)


@pytest.mark.parametrize(
    ("make", "outcome"),
    [
        (lambda secret: secret, Allow),
        (forged, Deny),  # the right id, a wrong secret with a valid checksum
        (lambda secret: generate().secret, Deny),  # an id that does not exist
    ],
)
def test_every_verdict_compares_digests_in_constant_time(
    monkeypatch: pytest.MonkeyPatch, make: Callable[[str], str], outcome: type
) -> None:
    calls: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(apikey, "compare_digest", spy)
    key_guard, secret = guard()
    decision = key_guard.check(request(make(secret)))
    assert isinstance(decision, outcome)
    # Two comparisons of full 32-byte MACs whatever the case: the quick MAC (against a dummy:
    # nothing was seen yet), then the HMAC (against the key's digest, or a dummy).
    assert calls == [(32, 32), (32, 32)]
    if outcome is Allow:
        return
    calls.clear()
    assert isinstance(key_guard.check(request(secret)), Allow)  # now the key is remembered
    calls.clear()
    decision = key_guard.check(request(make(secret)))
    assert isinstance(decision, Deny)
    assert calls == [(32, 32), (32, 32)]  # the same work for a refusal after a success


def test_a_remembered_key_costs_one_comparison(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(apikey, "compare_digest", spy)
    key_guard, secret = guard()
    assert isinstance(key_guard.check(request(secret)), Allow)
    calls.clear()
    assert isinstance(key_guard.check(request(secret)), Allow)
    assert calls == [(32, 32)]  # the quick MAC, in constant time; no HMAC


def test_the_store_holds_a_digest_not_something_to_compare_with_equals() -> None:
    key_guard, secret = guard()
    (entry,) = key_guard.index.entries.values()
    assert entry.digest == hmac.digest(PEPPER, secret.encode(), "sha256")
    assert secret not in repr(entry)
