"""The verified-token cache: bounded, ends at exp, never stores the token itself."""

from __future__ import annotations

from dataclasses import replace

from bastion.auth.jwt.cache import (
    MemoryRevocations,
    TokenCache,
    VerifiedToken,
    token_key,
    token_parts,
)
from bastion.pipeline.identity import Identity


def entry(valid_until: float, jti: str = "j", sub: str = "s", iat: float = 0) -> VerifiedToken:
    claims = {"jti": jti, "sub": sub, "iat": iat}
    return VerifiedToken(
        issuer="iss",
        claims=claims,
        header={},
        expires_at=valid_until,
        identity=Identity(consumer=sub, method="jwt"),
        valid_until=valid_until,
    )


def test_key_is_a_short_hash_not_the_token() -> None:
    token = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhIn0.c2ln"
    key = token_key(token)
    assert len(key) == 32
    assert token.encode() not in key
    assert token_key(token) == key
    assert token_key(token + "x") != key


def test_the_key_hashes_the_signature_and_a_hit_needs_the_same_signed_part() -> None:
    token = b"eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhIn0.c2ln"
    key, signed = token_parts(token)
    assert signed == b"eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhIn0"
    assert token_parts(token.decode()) == (key, signed)
    tampered = b"eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJiIn0.c2ln"  # another payload, the same signature
    assert token_parts(tampered)[0] == key
    cache = TokenCache()
    cache.put(key, replace(entry(100.0), signed=signed), now=0)
    assert cache.get(key, signed, 1) is not None
    assert cache.get(*token_parts(tampered), 1) is None  # a miss: full verification refuses it
    assert cache.get(key, signed, 1) is not None  # and the real token's entry stays
    assert token_parts(b"no-dot")[1] == b"\x00"  # can never equal a verified signed part


def test_entries_end_at_their_valid_until() -> None:
    cache = TokenCache()
    cache.put(b"k", entry(100.0), now=0)
    assert cache.get(b"k", b"", 99.9) is not None
    assert cache.get(b"k", b"", 100.0) is None
    assert len(cache) == 0


def test_size_is_bounded_oldest_first() -> None:
    cache = TokenCache(max_entries=10)
    for i in range(25):
        cache.put(bytes([i]), entry(1000.0), now=0)
        assert len(cache) <= 10
    assert cache.get(bytes([24]), b"", 0) is not None
    assert cache.get(bytes([0]), b"", 0) is None


def test_expired_entries_go_before_live_ones() -> None:
    cache = TokenCache(max_entries=4)
    cache.put(b"live-old", entry(1000.0), now=0)
    for i in range(3):
        cache.put(bytes([i]), entry(10.0), now=0)
    cache.put(b"new", entry(1000.0), now=50)
    assert cache.get(b"live-old", b"", 50) is not None
    assert cache.get(b"new", b"", 50) is not None
    assert len(cache) == 2


def test_zero_entries_disables_the_cache() -> None:
    cache = TokenCache(max_entries=0)
    cache.put(b"k", entry(100.0), now=0)
    assert len(cache) == 0


def test_memory_revocations() -> None:
    revocations = MemoryRevocations()
    assert not revocations.is_revoked(entry(100, jti="a"))
    revocations.revoke_jti("iss", "a", expires_at=100)
    assert revocations.is_revoked(entry(100, jti="a"))
    assert not revocations.is_revoked(entry(100, jti="b"))
    revocations.prune(now=100)
    assert not revocations.is_revoked(entry(100, jti="a"))
    revocations.revoke_subject("iss", "bob", at=50)
    assert revocations.is_revoked(entry(100, jti="c", sub="bob", iat=50))
    assert not revocations.is_revoked(entry(100, jti="d", sub="bob", iat=51))
    assert not revocations.is_revoked(entry(100, jti="e", sub="carol", iat=10))
