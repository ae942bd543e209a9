"""The in-memory limiters, lockout and concurrency limiter, on a fake clock: the scenario
vectors, the bound on memory, the growing back-off, exact in-flight counts."""

from __future__ import annotations

import random

import pytest

from bastion.ratelimit.core import ALGORITHMS, Algorithm, Limiter, Lockout, LockoutPolicy, Rate
from bastion.ratelimit.storage.memory import (
    DEFAULT_MAX_KEYS,
    LOG_ENTRIES,
    ConcurrencyLimiter,
    MemoryGCRA,
    MemoryLockout,
    MemorySlidingLog,
    MemorySlidingWindow,
    memory_limiter,
)
from tests.ratelimit.scenarios import (
    LOCKOUT_SCENARIOS,
    SCENARIOS,
    LockoutScenario,
    Scenario,
    expected,
)

MemoryLimiter = MemoryGCRA | MemorySlidingWindow | MemorySlidingLog


class FakeClock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def limiter(
    algorithm: Algorithm, rate: Rate, clock: FakeClock, max_keys: int = DEFAULT_MAX_KEYS
) -> MemoryLimiter:
    return memory_limiter(algorithm, rate, clock=clock, max_keys=max_keys)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_scenario_vectors(scenario: Scenario) -> None:
    clock = FakeClock()
    subject: Limiter = limiter(scenario.algorithm, scenario.rate, clock)
    assert subject.rate == scenario.rate
    for number, step in enumerate(scenario.steps):
        clock.now = step.at
        verdict = subject.peek(step.key) if step.peek else subject.hit(step.key, step.cost)
        assert verdict == expected(scenario, step), f"step {number}: {step}"


def test_the_factory_builds_each_algorithm_and_refuses_others() -> None:
    rate = Rate(10, 1.0, 10)
    assert isinstance(memory_limiter("gcra", rate), MemoryGCRA)
    assert isinstance(memory_limiter("sliding_window", rate), MemorySlidingWindow)
    assert isinstance(memory_limiter("sliding_log", rate), MemorySlidingLog)
    assert [memory_limiter(a, rate).algorithm for a in ALGORITHMS] == list(ALGORITHMS)
    with pytest.raises(ValueError, match="unknown rate-limit algorithm"):
        memory_limiter("leaky", rate)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sliding_log keeps one timestamp"):
        memory_limiter("sliding_log", Rate(10_001, 60.0, 1))
    with pytest.raises(ValueError, match="max_keys"):
        memory_limiter("gcra", rate, max_keys=0)


def test_the_default_clock_is_monotonic() -> None:
    verdict = memory_limiter("gcra", Rate(2, 3600.0, 2)).hit("a")
    assert verdict.allowed
    assert verdict.remaining == 1


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_peek_counts_nothing(algorithm: Algorithm) -> None:
    clock = FakeClock(100.0)
    subject = limiter(algorithm, Rate(3, 10.0, 3), clock)
    for _ in range(5):
        assert subject.peek("a").remaining == 2
    assert len(subject.table) == 0
    assert [subject.hit("a").allowed for _ in range(4)] == [True, True, True, False]
    assert not subject.peek("a").allowed
    assert len(subject.table) == 1


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_key_flood_cannot_grow_memory_past_max_keys(algorithm: Algorithm) -> None:
    """A client cycling through fresh keys (spoofed addresses, random API keys) fills the table;
    it stays at ``max_keys``, and each key dropped while it mattered is counted."""
    clock = FakeClock(1000.0)
    subject = limiter(algorithm, Rate(5, 60.0, 5), clock, max_keys=256)
    rng = random.Random(algorithm)
    peak = 0
    for number in range(2560):
        clock.now += 0.001
        assert subject.hit(f"k{rng.getrandbits(64)}").allowed
        peak = max(peak, len(subject.table))
        assert len(subject.table) <= 256, number
    assert peak == 256
    assert subject.table.evictions == 2560 - len(subject.table)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_expired_keys_go_before_any_eviction(algorithm: Algorithm) -> None:
    clock = FakeClock(1000.0)
    subject = limiter(algorithm, Rate(5, 1.0, 5), clock, max_keys=128)
    for number in range(64):
        subject.hit(f"old{number}")
    clock.now += 10.0  # every state of the first 64 keys has expired
    for number in range(64):
        subject.hit(f"live{number}", 5)
    for number in range(64):
        subject.hit(f"new{number}")
    assert subject.table.evictions == 0
    assert len(subject.table) == 128
    assert not any(key.startswith("old") for key in subject.table.states)
    assert not subject.hit("live0").allowed  # still counted


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_the_least_recently_admitted_key_is_evicted_first(algorithm: Algorithm) -> None:
    clock = FakeClock(1000.0)
    subject = limiter(algorithm, Rate(2, 60.0, 2), clock, max_keys=64)
    subject.hit("first")
    for number in range(63):
        subject.hit(f"k{number}")
    subject.hit("first")  # admitted again: now the most recent
    subject.hit("extra")  # the table is full: k0 and the oldest after it go, not "first"
    assert "first" in subject.table.states
    assert "k0" not in subject.table.states
    assert not subject.hit("first").allowed  # its quota was kept
    assert subject.table.evictions == 1  # max_keys // 64


def test_sliding_logs_cannot_grow_memory_past_their_entry_budget() -> None:
    """Each key's log holds up to ``limit`` timestamps: the key bound shrinks as the limit grows,
    so that max_keys full logs of 10,000 entries (4 * 10**9 bytes) cannot be reached."""
    assert memory_limiter("sliding_log", Rate(10, 60.0, 10)).table.max_keys == DEFAULT_MAX_KEYS
    assert memory_limiter("sliding_log", Rate(10_000, 60.0, 1)).table.max_keys == 400
    assert memory_limiter("sliding_log", Rate(1000, 60.0, 1), max_keys=100).table.max_keys == 100
    assert memory_limiter("gcra", Rate(10_000, 60.0, 1)).table.max_keys == DEFAULT_MAX_KEYS
    clock = FakeClock(0.0)
    subject = MemorySlidingLog(Rate(10_000, 60.0, 1), clock=clock)
    for number in range(800):
        assert subject.hit(f"k{number}", 10_000).allowed
        assert len(subject.table) <= 400
    assert sum(len(log) for log in subject.table.states.values()) <= LOG_ENTRIES


def test_an_evicted_key_starts_over_with_a_full_quota() -> None:
    """The documented trade-off of the bound: eviction fails open, once, for that key."""
    clock = FakeClock(1000.0)
    subject = limiter("gcra", Rate(1, 3600.0, 1), clock, max_keys=64)
    assert subject.hit("victim").allowed
    assert not subject.hit("victim").allowed
    for number in range(64):
        subject.hit(f"k{number}")
    assert subject.table.evictions >= 1
    assert subject.hit("victim").allowed


def test_purge_drops_expired_keys_only() -> None:
    clock = FakeClock(0.0)
    subject = limiter("gcra", Rate(1, 10.0, 1), clock)
    subject.hit("a")
    clock.now = 5.0
    subject.hit("b")
    clock.now = 12.0
    assert subject.table.purge(12_000_000) == 1
    assert list(subject.table.states) == ["b"]


# --- lockout --------------------------------------------------------------------------------------

POLICY = LockoutPolicy(max_failures=3, window=60.0, base=10.0, ceiling=40.0)


@pytest.mark.parametrize("scenario", LOCKOUT_SCENARIOS, ids=lambda s: s.name)
def test_lockout_scenario_vectors(scenario: LockoutScenario) -> None:
    clock = FakeClock()
    lockout: Lockout = MemoryLockout(scenario.policy, clock)
    for number, step in enumerate(scenario.steps):
        clock.now = step.at
        if step.op == "success":
            lockout.success(step.key)
            continue
        result = lockout.failure(step.key) if step.op == "failure" else lockout.locked_for(step.key)
        assert result == step.result, f"step {number}: {step}"


def fail(lockout: Lockout, key: str, times: int) -> list[float]:
    return [lockout.failure(key) for _ in range(times)]


def test_lockout_backs_off_growing_to_the_ceiling() -> None:
    clock = FakeClock(100.0)
    lockout: Lockout = MemoryLockout(POLICY, clock)
    assert lockout.policy == POLICY
    assert lockout.locked_for("a") == 0.0
    for duration in (10.0, 20.0, 40.0, 40.0):
        assert fail(lockout, "a", 3) == [0.0, 0.0, duration]
        assert lockout.locked_for("a") == duration
        clock.now += duration - 1
        assert lockout.locked_for("a") == 1.0
        clock.now += 1
        assert lockout.locked_for("a") == 0.0
    assert lockout.locked_for("b") == 0.0


def test_failures_while_locked_count_for_nothing() -> None:
    clock = FakeClock(0.0)
    lockout = MemoryLockout(POLICY, clock)
    assert fail(lockout, "a", 3)[-1] == 10.0
    clock.now = 5.0
    assert fail(lockout, "a", 10) == [0.0] * 10
    assert lockout.locked_for("a") == 5.0
    clock.now = 10.0
    assert fail(lockout, "a", 2) == [0.0, 0.0]  # a fresh count after the lockout
    assert lockout.failure("a") == 20.0


def test_failures_outside_the_window_do_not_add_up() -> None:
    clock = FakeClock(0.0)
    lockout = MemoryLockout(POLICY, clock)
    fail(lockout, "a", 2)
    clock.now = 60.0  # the first two no longer count at window's end
    assert fail(lockout, "a", 2) == [0.0, 0.0]
    clock.now = 119.0
    assert lockout.failure("a") == 10.0


def test_the_streak_is_forgotten_after_window_plus_ceiling() -> None:
    clock = FakeClock(0.0)
    lockout = MemoryLockout(POLICY, clock)
    fail(lockout, "a", 3)  # 10 s
    clock.now = 10.0
    fail(lockout, "a", 3)  # 20 s, the last failure at 10
    clock.now = 10.0 + 60.0 + 40.0 - 0.5
    assert fail(lockout, "a", 3)[-1] == 40.0  # not yet forgotten
    clock.now += 40.0 + 100.0
    assert fail(lockout, "a", 3)[-1] == 10.0


def test_success_forgets_failures_and_streak_but_keeps_a_running_lock() -> None:
    clock = FakeClock(0.0)
    lockout = MemoryLockout(POLICY, clock)
    fail(lockout, "a", 2)
    lockout.success("a")
    assert fail(lockout, "a", 2) == [0.0, 0.0]
    assert lockout.failure("a") == 10.0
    lockout.success("a")
    assert lockout.locked_for("a") == 10.0  # a success during a lockout does not lift it
    clock.now = 10.0
    assert fail(lockout, "a", 3)[-1] == 10.0  # the streak was forgotten
    clock.now = 20.0
    lockout.success("a")
    assert len(lockout.table) == 0
    lockout.success("never-seen")
    assert len(lockout.table) == 0


def test_lockout_state_is_bounded_and_expired_first() -> None:
    clock = FakeClock(0.0)
    lockout = MemoryLockout(POLICY, clock, max_keys=64)
    for number in range(64):
        lockout.failure(f"old{number}")
    clock.now = 1000.0  # their failures and streaks are forgotten
    for number in range(64):
        lockout.failure(f"new{number}")
    assert lockout.table.evictions == 0
    for number in range(640):
        lockout.failure(f"flood{number}")
        assert len(lockout.table) <= 64
    assert lockout.table.evictions > 0


# --- concurrency ----------------------------------------------------------------------------------


def test_concurrency_limits_in_flight_per_key() -> None:
    limiter = ConcurrencyLimiter(max_in_flight=2)
    assert [limiter.acquire("a") for _ in range(3)] == [True, True, False]
    assert limiter.acquire("b")
    assert limiter.in_flight("a") == 2
    limiter.release("a")
    assert limiter.acquire("a")
    for _ in range(2):
        limiter.release("a")
    limiter.release("b")
    assert limiter.counts == {}


def test_concurrency_release_without_acquire_never_goes_negative() -> None:
    limiter = ConcurrencyLimiter(max_in_flight=1)
    limiter.release("a")
    limiter.release("a")
    assert limiter.in_flight("a") == 0
    assert limiter.acquire("a")
    assert not limiter.acquire("a")


def test_concurrency_refuses_new_keys_when_full_and_never_forgets_a_count() -> None:
    limiter = ConcurrencyLimiter(max_in_flight=1, max_keys=4)
    assert all(limiter.acquire(f"k{number}") for number in range(4))
    assert not limiter.acquire("k4")
    assert limiter.overflows == 1
    assert not limiter.acquire("k0")  # at its own limit: not an overflow
    assert limiter.overflows == 1
    limiter.release("k0")
    assert limiter.acquire("k4")
    with pytest.raises(ValueError, match="at least 1"):
        ConcurrencyLimiter(max_in_flight=0)


def test_concurrency_counts_are_exact_under_random_interleaving() -> None:
    rng = random.Random(7)
    limiter = ConcurrencyLimiter(max_in_flight=3, max_keys=8)
    held: list[str] = []
    for _ in range(20_000):
        if held and rng.random() < 0.5:
            limiter.release(held.pop(rng.randrange(len(held))))
        else:
            key = f"k{rng.randrange(10)}"
            expected_ok = held.count(key) < 3 and (key in held or len(set(held)) < 8)
            assert limiter.acquire(key) == expected_ok
            if expected_ok:
                held.append(key)
        assert limiter.counts == {key: held.count(key) for key in set(held)}
    for key in held:
        limiter.release(key)
    assert limiter.counts == {}
