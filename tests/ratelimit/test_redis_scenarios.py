"""The scenario vectors every storage replays, against a real Redis with an injected clock:
the Lua scripts give the memory limiters' verdicts to the microsecond."""

from __future__ import annotations

import pytest

from bastion.backends.redis import RedisClient
from bastion.ratelimit.storage.redis import RedisLimiter
from tests.ratelimit.scenarios import SCENARIOS, Scenario, expected


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
async def test_scenario_vectors(
    scenario: Scenario, redis_client: RedisClient, redis_prefix: str
) -> None:
    clock = FakeClock()
    limiter = RedisLimiter(
        redis_client,
        scenario.algorithm,
        scenario.rate,
        namespace=scenario.name,
        key_prefix=redis_prefix,
        clock=clock,
    )
    for number, step in enumerate(scenario.steps):
        clock.now = step.at
        if step.peek:
            verdict = await limiter.peek(step.key)
        else:
            verdict = await limiter.hit(step.key, step.cost)
        assert verdict == expected(scenario, step), f"step {number}: {step}"
