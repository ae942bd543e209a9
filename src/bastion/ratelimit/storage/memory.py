"""Rate-limit state in this process: bounded key tables behind the three algorithms, lockouts and
in-flight counts.

One gateway process, or tests: the state dies with the process and is not shared between
instances (use Redis for that). The arithmetic lives in :mod:`bastion.ratelimit.algorithms`; this
module only keeps each key's state in a dict.

**Memory is bounded.** Each table holds at most ``max_keys`` keys (100,000 by default: a few tens
of MB). When a new key finds it full, the table first drops the keys whose state has expired
(equivalent to absent: a GCRA key whose ``tat <= now``, windows long gone, an empty log), then,
if that freed less than ``max_keys // 64`` places, evicts the keys least recently admitted (or
locked, or acquired) until it has. Evicting a key resets its quota: **eviction fails open** for
that key (its next hit finds a full bucket). That is the price of a bound, which is why the bound
is generous and why every table counts its ``evictions`` (export it as a metric: a growing count
means the bound is too small for the traffic, or someone is cycling through keys to shake their
own limit loose). Freeing 1/64 of the table at once keeps the scan for expired keys, O(max_keys),
to once per ``max_keys // 64`` new keys. Nothing is evicted while expired keys remain, and the
concurrency limiter never evicts (an in-flight count cannot be forgotten): it refuses new keys
while full.

A sliding log holds up to ``limit`` timestamps per key (about 40 bytes each), so its table keeps
at most ``LOG_ENTRIES // limit`` keys when that is below ``max_keys``: about 160 MB when every
key's log is full, whatever the limit.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_right
from collections.abc import Callable
from itertools import islice
from typing import Final, Generic, TypeVar

from bastion.ratelimit.algorithms import (
    LogState,
    Params,
    WindowState,
    gcra,
    gcra_expired,
    log_expired,
    microseconds,
    sliding_log,
    sliding_window,
    window_expired,
)
from bastion.ratelimit.core import Algorithm, Clock, LockoutPolicy, Rate, Verdict

DEFAULT_MAX_KEYS: Final = 100_000

LOG_ENTRIES: Final = 4_000_000
"""The timestamps all the keys of one sliding-log table may hold at most."""

S = TypeVar("S")


class KeyTable(Generic[S]):
    """A dict of per-key state bounded to ``max_keys``; oldest first in iteration order."""

    def __init__(self, max_keys: int, expired: Callable[[S, float], bool]) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.states: dict[str, S] = {}
        self.max_keys: Final = max_keys
        self.headroom: Final = max(1, max_keys // 64)
        self.expired = expired
        self.evictions = 0
        """Keys dropped while their state still mattered (each one fails open once)."""

    def __len__(self) -> int:
        return len(self.states)

    def purge(self, now: float) -> int:
        """Drop the keys whose state has expired; how many were dropped."""
        states = self.states
        expired = self.expired
        stale = [key for key, state in states.items() if expired(state, now)]
        for key in stale:
            del states[key]
        return len(stale)

    def make_room(self, now: float) -> None:
        """Called when a new key finds the table full: purge, then evict the oldest if need be."""
        self.purge(now)
        states = self.states
        excess = len(states) - (self.max_keys - self.headroom)
        if excess > 0:
            for key in list(islice(states, excess)):
                del states[key]
            self.evictions += excess

    def admit(self, key: str, state: S, known: bool, now: float) -> None:
        """Store ``key``'s new state, last in the order of eviction."""
        states = self.states
        if known:
            del states[key]
        elif len(states) >= self.max_keys:
            self.make_room(now)
        states[key] = state


class MemoryLimiter:
    """The parts every in-memory limiter shares: its rate and its clock."""

    def __init__(self, algorithm: Algorithm, rate: Rate, clock: Clock) -> None:
        self.params: Final = Params(algorithm, rate)
        self.clock: Final = clock

    @property
    def rate(self) -> Rate:
        return self.params.rate

    @property
    def algorithm(self) -> Algorithm:
        return self.params.algorithm

    def now(self) -> int:
        return microseconds(self.clock())

    def hit(self, key: str, cost: int = 1) -> Verdict:
        """Declared here so that compiled callers dispatch through the class, not by name."""
        raise NotImplementedError

    def peek(self, key: str) -> Verdict:
        raise NotImplementedError


class MemoryGCRA(MemoryLimiter):
    """Token bucket (GCRA): one integer per key."""

    def __init__(
        self, rate: Rate, *, clock: Clock = time.monotonic, max_keys: int = DEFAULT_MAX_KEYS
    ) -> None:
        super().__init__("gcra", rate, clock)
        params = self.params
        self.table: Final = KeyTable[int](max_keys, lambda tat, now: gcra_expired(params, tat, now))

    def hit(self, key: str, cost: int = 1) -> Verdict:
        now = microseconds(self.clock())
        tat = self.table.states.get(key)
        new, verdict = gcra(self.params, tat, now, cost)
        if new is not None:
            self.table.admit(key, new, tat is not None, now)
        return verdict

    def peek(self, key: str) -> Verdict:
        return gcra(self.params, self.table.states.get(key), self.now(), 1)[1]


class MemorySlidingWindow(MemoryLimiter):
    """Sliding window counter: three integers per key."""

    def __init__(
        self, rate: Rate, *, clock: Clock = time.monotonic, max_keys: int = DEFAULT_MAX_KEYS
    ) -> None:
        super().__init__("sliding_window", rate, clock)
        params = self.params
        self.table: Final = KeyTable[WindowState](
            max_keys, lambda state, now: window_expired(params, state, now)
        )

    def hit(self, key: str, cost: int = 1) -> Verdict:
        now = microseconds(self.clock())
        state = self.table.states.get(key)
        new, verdict = sliding_window(self.params, state, now, cost)
        if new is not None:
            self.table.admit(key, new, state is not None, now)
        return verdict

    def peek(self, key: str) -> Verdict:
        return sliding_window(self.params, self.table.states.get(key), self.now(), 1)[1]


class MemorySlidingLog(MemoryLimiter):
    """Exact sliding log: one timestamp per admitted unit of cost, ``limit`` at most per key."""

    def __init__(
        self, rate: Rate, *, clock: Clock = time.monotonic, max_keys: int = DEFAULT_MAX_KEYS
    ) -> None:
        super().__init__("sliding_log", rate, clock)
        params = self.params
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.table: Final = KeyTable[LogState](
            min(max_keys, max(1, LOG_ENTRIES // rate.limit)),
            lambda log, now: log_expired(params, log, now),
        )

    def hit(self, key: str, cost: int = 1) -> Verdict:
        now = microseconds(self.clock())
        log = self.table.states.get(key)
        new, verdict = sliding_log(self.params, log, now, cost)
        if new is not None:
            self.table.admit(key, new, log is not None, now)
        return verdict

    def peek(self, key: str) -> Verdict:
        log = self.table.states.get(key)
        return sliding_log(self.params, log, self.now(), 1, record=False)[1]


class _Lock:
    """One key's failed attempts: their times in the window, the lockout streak, the lock."""

    __slots__ = ("failures", "last_failure", "locked_until", "streak")

    def __init__(self) -> None:
        self.failures: list[float] = []
        self.last_failure = -math.inf
        self.locked_until = -math.inf
        self.streak = 0


class MemoryLockout:
    """Failed attempts per key, in process: ``max_failures`` within ``window`` lock the key out
    for ``policy.duration(streak)``, the streak growing with each lockout until it is forgotten
    (``window + ceiling`` without a failure, or a success).

    Failures recorded while the key is locked count for nothing (the guard refuses locked keys
    before it checks credentials). A success forgets the failures and the streak but does not
    lift a running lockout: an attempt let through during one must not unlock the key.
    """

    def __init__(
        self,
        policy: LockoutPolicy,
        clock: Clock = time.monotonic,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        self._policy = policy
        self.clock: Final = clock
        self.forget_after: Final = policy.window + policy.ceiling
        forget_after = self.forget_after
        self.table: Final = KeyTable[_Lock](
            max_keys,
            lambda lock, now: (
                lock.locked_until <= now
                and (
                    lock.last_failure + forget_after <= now
                    or (not lock.failures and not lock.streak)
                )
            ),
        )

    @property
    def policy(self) -> LockoutPolicy:
        return self._policy

    def locked_for(self, key: str) -> float:
        lock = self.table.states.get(key)
        if lock is None:
            return 0.0
        left = lock.locked_until - self.clock()
        return left if left > 0 else 0.0

    def failure(self, key: str) -> float:
        now = self.clock()
        states = self.table.states
        lock = states.get(key)
        if lock is None:
            if len(states) >= self.table.max_keys:
                self.table.make_room(now)
            lock = _Lock()
        elif lock.locked_until > now:
            return 0.0
        else:
            del states[key]
        states[key] = lock
        failures = lock.failures
        if lock.last_failure + self.forget_after <= now:
            lock.streak = 0
        horizon = now - self._policy.window
        if failures and failures[0] <= horizon:
            del failures[: bisect_right(failures, horizon)]
        failures.append(now)
        lock.last_failure = now
        if len(failures) < self._policy.max_failures:
            return 0.0
        failures.clear()
        lock.streak += 1
        duration = self._policy.duration(lock.streak)
        lock.locked_until = now + duration
        return duration

    def success(self, key: str) -> None:
        lock = self.table.states.get(key)
        if lock is None:
            return
        if lock.locked_until > self.clock():
            lock.failures.clear()
            lock.streak = 0
        else:
            del self.table.states[key]


class ConcurrencyLimiter:
    """In-flight requests per key: ``acquire`` before, ``release`` once after each successful
    ``acquire`` (in a ``finally``). Counts are exact and never negative (a release without an
    acquire is ignored); a key whose count returns to 0 is forgotten, so nothing leaks. The table
    never evicts (a count still in flight cannot be forgotten): with ``max_keys`` keys in flight,
    a new key is refused, and ``overflows`` counts those refusals.
    """

    def __init__(self, max_in_flight: int, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        if max_in_flight < 1 or max_keys < 1:
            raise ValueError("max_in_flight and max_keys must be at least 1")
        self.max_in_flight: Final = max_in_flight
        self.max_keys: Final = max_keys
        self.counts: Final[dict[str, int]] = {}
        self.overflows = 0

    def acquire(self, key: str) -> bool:
        counts = self.counts
        count = counts.get(key, 0)
        if count >= self.max_in_flight:
            return False
        if count == 0 and len(counts) >= self.max_keys:
            self.overflows += 1
            return False
        counts[key] = count + 1
        return True

    def release(self, key: str) -> None:
        counts = self.counts
        count = counts.get(key, 0)
        if count > 1:
            counts[key] = count - 1
        elif count == 1:
            del counts[key]

    def in_flight(self, key: str) -> int:
        return self.counts.get(key, 0)


def memory_limiter(
    algorithm: Algorithm,
    rate: Rate,
    *,
    clock: Clock = time.monotonic,
    max_keys: int = DEFAULT_MAX_KEYS,
) -> MemoryGCRA | MemorySlidingWindow | MemorySlidingLog:
    """The in-memory limiter of ``algorithm`` for ``rate``."""
    if algorithm == "gcra":
        return MemoryGCRA(rate, clock=clock, max_keys=max_keys)
    if algorithm == "sliding_window":
        return MemorySlidingWindow(rate, clock=clock, max_keys=max_keys)
    if algorithm == "sliding_log":
        return MemorySlidingLog(rate, clock=clock, max_keys=max_keys)
    raise ValueError(f"unknown rate-limit algorithm {algorithm!r}")
