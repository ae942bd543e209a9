"""Redis and memory agree beyond the vectors: random sequences of hits, peeks and lockout
operations at random times, replayed on both, give equal answers step by step."""

from __future__ import annotations

import random

import pytest

from bastion.backends.redis import RedisClient
from bastion.ratelimit.core import ALGORITHMS, Algorithm, LockoutPolicy, Rate
from bastion.ratelimit.storage.memory import MemoryLockout, memory_limiter
from bastion.ratelimit.storage.redis import RedisLimiter, RedisLockout
from tests.ratelimit.test_redis_scenarios import FakeClock

RATES = [Rate(5, 10.0, 5), Rate(3, 1.0, 7), Rate(10, 1.0, 10), Rate(7, 60.0, 2)]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("seed", range(4))
async def test_random_hits_agree_with_memory(
    algorithm: Algorithm, seed: int, redis_client: RedisClient, redis_prefix: str
) -> None:
    rng = random.Random(seed)
    rate = RATES[seed]
    clock = FakeClock()
    clock.now = rng.uniform(0, 1e6)
    memory = memory_limiter(algorithm, rate, clock=clock)
    shared = RedisLimiter(
        redis_client, algorithm, rate, namespace="agree", key_prefix=redis_prefix, clock=clock
    )
    refused = 0
    for step in range(300):
        clock.now += rng.choice([0.0, 0.0, 1e-6, rng.uniform(0, rate.period / rate.limit * 2)])
        clock.now = round(clock.now, 6)
        key = rng.choice("ab")
        if rng.random() < 0.15:
            assert await shared.peek(key) == memory.peek(key), f"step {step}: peek {key}"
        else:
            cost = rng.choice([1, 1, 1, 2, 3, rate.limit + 1])
            verdict = await shared.hit(key, cost)
            assert verdict == memory.hit(key, cost), f"step {step}: cost {cost}"
            refused += not verdict.allowed
    assert 30 < refused < 270  # both outcomes, many times


POLICY = LockoutPolicy(max_failures=3, window=60.0, base=10.0, ceiling=40.0)


@pytest.mark.parametrize("seed", range(4))
async def test_random_lockout_operations_agree_with_memory(
    seed: int, redis_client: RedisClient, redis_prefix: str
) -> None:
    rng = random.Random(seed)
    clock = FakeClock()
    clock.now = rng.uniform(0, 1e6)
    memory = MemoryLockout(POLICY, clock)
    shared = RedisLockout(redis_client, POLICY, key_prefix=redis_prefix, clock=clock)
    lockouts = 0
    for step in range(400):
        clock.now += rng.choice([0.0, 0.1, rng.uniform(0, 30), rng.uniform(0, 120)])
        key = rng.choice("ab")
        operation = rng.choices(["failure", "locked_for", "success"], [6, 3, 1])[0]
        if operation == "failure":
            duration = await shared.failure(key)
            assert duration == memory.failure(key), f"step {step}"
            lockouts += duration > 0
        elif operation == "locked_for":
            assert await shared.locked_for(key) == memory.locked_for(key), f"step {step}"
        else:
            await shared.success(key)
            memory.success(key)
    assert lockouts > 10
