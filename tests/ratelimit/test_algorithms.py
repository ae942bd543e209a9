"""The algorithms' arithmetic on its own: the scenario vectors, and properties over seeded random
sequences of hits (bounds on what is admitted; remaining, reset_after and retry_after that say
exactly what happens next)."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bastion.ratelimit import algorithms as alg
from bastion.ratelimit.core import SLIDING_LOG_MAX_LIMIT, Algorithm, Rate, Verdict
from tests.ratelimit.scenarios import SCENARIOS, Scenario, expected

US = 1_000_000
Hit = Callable[[alg.Params, Any, int, int], tuple[Any, Verdict]]
HITS: dict[Algorithm, Hit] = {
    "gcra": alg.gcra,
    "sliding_window": alg.sliding_window,
    "sliding_log": alg.sliding_log,
}
RATES = [
    Rate(5, 10.0, 5),
    Rate(10, 1.0, 10),
    Rate(3, 1.0, 7),
    Rate(7, 60.0, 2),
    Rate(100, 60.0, 100),
]


class Key:
    """One key's state with the pure functions, so that a test can replay, copy and probe it."""

    def __init__(self, algorithm: Algorithm, rate: Rate) -> None:
        self.algorithm = algorithm
        self.params = alg.Params(algorithm, rate)
        self.state: Any = None

    def hit(self, now: int, cost: int = 1) -> Verdict:
        new, verdict = HITS[self.algorithm](self.params, self.state, now, cost)
        assert (new is not None) == verdict.allowed
        if new is not None:
            self.state = new
        return verdict

    def probe(self, now: int, cost: int = 1) -> Verdict:
        """The verdict a hit would get, leaving the state as it was."""
        state = list(self.state) if isinstance(self.state, list) else self.state
        return HITS[self.algorithm](self.params, state, now, cost)[1]


def random_hits(key: Key, rng: random.Random, count: int) -> Iterator[tuple[int, int, Verdict]]:
    """``count`` hits at random gaps (bursts, trickles, pauses) with random costs, now and then
    one above the capacity; each is yielded right after it was made, ``key`` in its new state."""
    period = key.params.period
    now = rng.randrange(0, 1000 * US)
    for _ in range(count):
        now += rng.choice([0, 0, 1, rng.randrange(period // 50 + 1), rng.randrange(period * 2)])
        cost = rng.choice([1, 1, 1, 2, rng.randint(1, key.params.capacity + 1)])
        yield now, cost, key.hit(now, cost)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_scenario_vectors(scenario: Scenario) -> None:
    hit = HITS[scenario.algorithm]
    params = alg.Params(scenario.algorithm, scenario.rate)
    states: dict[str, Any] = {}
    for number, step in enumerate(scenario.steps):
        state = states.get(step.key)
        now = alg.microseconds(step.at)
        if step.peek:
            state = list(state) if isinstance(state, list) else state
            verdict = hit(params, state, now, 1)[1]
        else:
            new, verdict = hit(params, state, now, step.cost)
            if new is not None:
                states[step.key] = new
        assert verdict == expected(scenario, step), f"step {number}: {step}"


def test_a_bucket_of_ten_at_a_tenth_of_a_second_admits_ten_at_once() -> None:
    """In float seconds, 0.1 s accumulates rounding and the tenth hit of a burst is refused."""
    for start in (0.0, 1000.0, 12345.678, 3e6):
        key = Key("gcra", Rate(10, 1.0, 10))
        now = alg.microseconds(start)
        assert [key.hit(now).allowed for _ in range(11)] == [True] * 10 + [False]


@pytest.mark.parametrize("algorithm", list(HITS))
@pytest.mark.parametrize("cost", [0, -1, -100])
def test_negative_cost_cannot_refill_the_bucket(algorithm: Algorithm, cost: int) -> None:
    key = Key(algorithm, Rate(5, 10.0, 5))
    key.hit(0, 5)
    with pytest.raises(ValueError, match="at least 1"):
        key.hit(1, cost)
    assert not key.hit(1).allowed


def test_params_refuse_what_cannot_be_limited() -> None:
    with pytest.raises(ValueError, match="sliding_log keeps one timestamp"):
        alg.Params("sliding_log", Rate(SLIDING_LOG_MAX_LIMIT + 1, 60.0, 1))
    alg.Params("sliding_log", Rate(SLIDING_LOG_MAX_LIMIT, 60.0, 1))
    with pytest.raises(ValueError, match="1,000,000 hits per second"):
        alg.Params("gcra", Rate(2_000_000, 1.0, 1))


def test_microseconds_round_to_the_nearest() -> None:
    assert alg.microseconds(4.35) == 4_350_000  # 4.35 * 1e6 is 4349999.999999999 in floats
    assert alg.microseconds(0.3) == 300_000
    assert alg.microseconds(1e9) == 10**15


@pytest.mark.parametrize("rate", RATES, ids=str)
def test_gcra_admits_at_most_burst_plus_the_sustained_rate(rate: Rate) -> None:
    rng = random.Random(f"gcra {rate}")
    key = Key("gcra", rate)
    interval = key.params.interval
    admitted = [
        (now, cost) for now, cost, verdict in random_hits(key, rng, 3000) if verdict.allowed
    ]
    assert len(admitted) > 300
    for first, (start, _) in enumerate(admitted):
        total = 0
        for now, cost in admitted[first:]:
            total += cost
            # Over [start, now]: the burst, plus one hit per emission interval.
            assert total <= rate.burst + (now - start) // interval
            if now - start > 3 * key.params.period:
                break
    # Over any period: at most burst + limit (the interval is rounded up, never down).
    assert key.params.period // interval <= rate.limit


@pytest.mark.parametrize("rate", RATES, ids=str)
def test_sliding_log_admits_at_most_limit_in_any_period(rate: Rate) -> None:
    rng = random.Random(f"log {rate}")
    key = Key("sliding_log", rate)
    admitted = [
        (now, cost) for now, cost, verdict in random_hits(key, rng, 3000) if verdict.allowed
    ]
    assert len(admitted) > 300
    for last, (end, _) in enumerate(admitted):
        in_period = sum(cost for now, cost in admitted[: last + 1] if now > end - key.params.period)
        assert in_period <= rate.limit


@pytest.mark.parametrize("rate", RATES, ids=str)
def test_sliding_window_admits_at_most_limit_per_window(rate: Rate) -> None:
    rng = random.Random(f"window {rate}")
    key = Key("sliding_window", rate)
    period = key.params.period
    per_window: dict[int, int] = {}
    for now, cost, verdict in random_hits(key, rng, 3000):
        if verdict.allowed:
            per_window[now // period] = per_window.get(now // period, 0) + cost
    assert max(per_window.values()) <= rate.limit
    # Two windows in a row: the estimate weighs the previous one, so never twice the limit.
    for window, count in per_window.items():
        assert count + per_window.get(window + 1, 0) <= 2 * rate.limit


@pytest.mark.parametrize("algorithm", list(HITS))
@pytest.mark.parametrize("rate", RATES, ids=str)
def test_retry_after_is_exact(algorithm: Algorithm, rate: Rate) -> None:
    """A refused hit repeated at now + retry_after is admitted; one microsecond earlier, not."""
    rng = random.Random(f"retry {algorithm} {rate}")
    key = Key(algorithm, rate)
    refused = 0
    for now, cost, verdict in random_hits(key, rng, 1500):
        if verdict.allowed:
            assert verdict.retry_after == 0.0
            continue
        refused += 1
        retry = alg.microseconds(verdict.retry_after)
        assert retry > 0
        if cost > key.params.capacity:
            assert verdict.retry_after == rate.period
            continue
        assert key.probe(now + retry, cost).allowed, (now, cost, verdict)
        assert not key.probe(now + retry - 1, cost).allowed, (now, cost, verdict)
    assert refused > 100


@pytest.mark.parametrize("algorithm", list(HITS))
@pytest.mark.parametrize("rate", RATES, ids=str)
def test_remaining_is_what_is_left_now(algorithm: Algorithm, rate: Rate) -> None:
    """After a verdict, exactly ``remaining`` more hits of cost 1 are admitted at the same time."""
    rng = random.Random(f"remaining {algorithm} {rate}")
    key = Key(algorithm, rate)
    for now, _, verdict in random_hits(key, rng, 400):
        assert 0 <= verdict.remaining <= key.params.capacity
        assert verdict.limit == key.params.capacity
        probe = Key(algorithm, rate)
        probe.state = list(key.state) if isinstance(key.state, list) else key.state
        assert [probe.hit(now).allowed for _ in range(verdict.remaining + 1)] == [True] * (
            verdict.remaining
        ) + [False]


@pytest.mark.parametrize("algorithm", list(HITS))
@pytest.mark.parametrize("rate", RATES, ids=str)
def test_reset_after_is_when_the_quota_is_whole(algorithm: Algorithm, rate: Rate) -> None:
    rng = random.Random(f"reset {algorithm} {rate}")
    key = Key(algorithm, rate)
    whole = key.params.capacity - 1  # remaining after a hit of cost 1 on a whole quota
    for now, _, verdict in random_hits(key, rng, 400):
        reset = alg.microseconds(verdict.reset_after)
        assert reset >= 0
        assert key.probe(now + reset).remaining == whole, (now, verdict)
        if reset > 0:
            assert key.probe(now + reset - 1).remaining < whole, (now, verdict)
