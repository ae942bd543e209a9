"""Redis limiters beyond the scenario vectors: atomic under concurrency from several connections,
every key expiring, one hash tag per call, peeks that change nothing, long logs."""

from __future__ import annotations

import asyncio
import binascii
from collections.abc import AsyncIterator

import pytest

from bastion.backends.redis import RedisClient
from bastion.ratelimit.core import ALGORITHMS, Algorithm, LockoutPolicy, Rate
from bastion.ratelimit.storage.redis import RedisLimiter, RedisLockout
from tests.ratelimit.test_redis_scenarios import FakeClock


@pytest.fixture
async def clients(redis_url: str) -> AsyncIterator[list[RedisClient]]:
    """Five gateway instances: five clients, five connections."""
    clients = [RedisClient(redis_url, command_timeout=5.0) for _ in range(5)]
    for client in clients:
        await client.connect()
    yield clients
    for client in clients:
        await client.close()


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_500_concurrent_hits_from_5_connections_admit_exactly_50(
    algorithm: Algorithm, clients: list[RedisClient], redis_prefix: str
) -> None:
    # Server time (no injected clock); an hour's period, so nothing refills during the test.
    rate = Rate(50, 3600.0, 50)
    limiters = [
        RedisLimiter(c, algorithm, rate, namespace="race", key_prefix=redis_prefix) for c in clients
    ]
    verdicts = await asyncio.gather(*(limiters[n % 5].hit("k") for n in range(500)))
    admitted = [v for v in verdicts if v.allowed]
    assert len(admitted) == 50
    assert sorted(v.remaining for v in admitted) == list(range(50))
    assert all(v.retry_after > 0 for v in verdicts if not v.allowed)


def key_slot(key: bytes) -> int:
    """The cluster slot of ``key``: CRC16 (XMODEM) of its hash tag, modulo 16384."""
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1 : end]
    return binascii.crc_hqx(key, 0) % 16384


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("client_key", ["1.2.3.4", "c:alice", "a}b{c", "{x}", ""])
async def test_every_key_expires_and_carries_one_hash_tag(
    algorithm: Algorithm, client_key: str, redis_client: RedisClient, redis_prefix: str
) -> None:
    rate = Rate(10, 30.0, 10)
    limiter = RedisLimiter(redis_client, algorithm, rate, namespace="ttl", key_prefix=redis_prefix)
    await limiter.hit(client_key, 3)
    keys = await redis_client.execute("KEYS", redis_prefix + "*")
    assert keys == [limiter.redis_key(client_key).encode()]
    name = keys[0]
    assert name.startswith(f"{redis_prefix}rl:{{ttl:".encode())
    assert key_slot(name) == key_slot(f"{redis_prefix}rl:{{ttl:{client_key}".encode() + b"}")
    ttl = await redis_client.execute("PTTL", name)
    assert 0 < ttl <= 60_000  # never more than two windows


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_peek_changes_nothing(
    algorithm: Algorithm, redis_client: RedisClient, redis_prefix: str
) -> None:
    clock = FakeClock()
    clock.now = 100.0
    limiter = RedisLimiter(
        redis_client,
        algorithm,
        Rate(3, 10.0, 3),
        namespace="peek",
        key_prefix=redis_prefix,
        clock=clock,
    )
    first = await limiter.peek("a")
    assert first.allowed
    assert first.remaining == 2
    assert await redis_client.execute("EXISTS", limiter.redis_key("a")) == 0
    await limiter.hit("a", 2)
    assert await limiter.peek("a") == await limiter.peek("a")
    assert (await limiter.hit("a")).remaining == 0


async def test_a_long_log_expires_in_one_hit(redis_client: RedisClient, redis_prefix: str) -> None:
    clock = FakeClock()
    limiter = RedisLimiter(
        redis_client,
        "sliding_log",
        Rate(10_000, 10.0, 10_000),
        namespace="long",
        key_prefix=redis_prefix,
        clock=clock,
    )
    clock.now = 1.0
    assert (await limiter.hit("a", 6_000)).remaining == 4_000
    clock.now = 2.0
    assert (await limiter.hit("a", 4_000)).remaining == 0
    refused = await limiter.hit("a")
    assert not refused.allowed
    assert refused.retry_after == 9.0
    clock.now = 11.0  # the 6,000 of t=1 expire
    assert (await limiter.hit("a", 5_000)).remaining == 1_000
    assert await redis_client.execute("LLEN", limiter.redis_key("a")) == 9_000


async def test_costs_below_one_are_refused(redis_client: RedisClient, redis_prefix: str) -> None:
    limiter = RedisLimiter(redis_client, "gcra", Rate(3, 1.0, 3), namespace="c", key_prefix="x:")
    with pytest.raises(ValueError, match="at least 1"):
        await limiter.hit("a", 0)


def test_sliding_window_refuses_rates_it_cannot_count_exactly(redis_client: RedisClient) -> None:
    RedisLimiter(redis_client, "sliding_window", Rate(100_000, 86_400.0, 1), namespace="ok")
    with pytest.raises(ValueError, match="2\\*\\*53"):
        RedisLimiter(redis_client, "sliding_window", Rate(1_000_000, 86_400.0, 1), namespace="x")


async def test_lockout_keys_share_one_slot_and_expire(
    redis_client: RedisClient, redis_prefix: str
) -> None:
    policy = LockoutPolicy(max_failures=2, window=30.0, base=5.0, ceiling=20.0)
    lockout = RedisLockout(redis_client, policy, namespace="login", key_prefix=redis_prefix)
    assert await lockout.failure("ip:1.2.3.4") == 0.0
    state, failures = lockout.redis_keys("ip:1.2.3.4")
    assert key_slot(state.encode()) == key_slot(failures.encode())
    assert 0 < await redis_client.execute("PTTL", failures) <= 30_000
    assert 0 < await redis_client.execute("PTTL", state) <= 50_000
    assert await lockout.failure("ip:1.2.3.4") == 5.0  # server time: a real lockout
    assert 4.9 < await lockout.locked_for("ip:1.2.3.4") <= 5.0
    assert await redis_client.execute("EXISTS", failures) == 0
    assert 0 < await redis_client.execute("PTTL", state) <= 50_000
    await lockout.success("ip:1.2.3.4")
    assert 4.9 < await lockout.locked_for("ip:1.2.3.4") <= 5.0  # a success lifts no lock
