"""Scenario vectors: sequences of hits and the exact verdicts every limiter must give for them.

Every storage (memory, Redis) replays the same vectors, so that they agree to the microsecond.
The semantics are in :mod:`bastion.ratelimit.core`'s docstring; the values here were worked out
by hand from it (the comments show the arithmetic), not recorded from an implementation.

Shape (plain data; this module imports only the contract):

- ``SCENARIOS``: a tuple of :class:`Scenario`, each with a unique ``name``, its ``algorithm``
  (``"gcra"``, ``"sliding_window"``, ``"sliding_log"``), its :class:`Rate` and its ``steps``.
- :class:`Step` ``(at, key, cost, allowed, remaining, reset_after, retry_after, peek)``: at clock
  reading ``at`` (float seconds), ``hit(key, cost)`` (or ``peek(key)`` when ``peek`` is true,
  with ``cost`` 1) must return exactly ``expected(scenario, step)``, that is
  ``Verdict(allowed, scenario.limit, remaining, reset_after, retry_after)``; compare with ``==``.
- The limiter's clock starts wherever the first step says; keys are fresh at the start of each
  scenario (use a fresh limiter, or a fresh key prefix on Redis).
- Times convert to the limiters' microseconds to the nearest (``algorithms.microseconds(at)``,
  ``round(at * 1_000_000)`` gives the same: every time here is whole); durations come back
  as ``microseconds / 1_000_000``, so the decimal literals below compare exactly.

Lockouts have their own vectors, ``LOCKOUT_SCENARIOS``: each :class:`LockoutScenario` has a
``name``, a :class:`LockoutPolicy` and :class:`LockoutStep` ``(at, op, key, result)``: at clock
reading ``at``, ``op`` (``"failure"``, ``"locked_for"`` or ``"success"``) on ``key`` must return
exactly ``result`` (float seconds; for ``success``, which returns nothing, ``result`` is 0.0 and
not compared). Lockouts count in float seconds; every value here is exact in binary.

Vectors are added, never renamed or changed: another storage's tests key on the names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

from bastion.ratelimit.core import Algorithm, LockoutPolicy, Rate, Verdict


class Step(NamedTuple):
    at: float
    key: str
    cost: int
    allowed: bool
    remaining: int
    reset_after: float
    retry_after: float = 0.0
    peek: bool = False


@dataclass(frozen=True)
class Scenario:
    name: str
    algorithm: Algorithm
    rate: Rate
    steps: tuple[Step, ...]

    @property
    def limit(self) -> int:
        """``Verdict.limit``: the burst for gcra (the bucket's size), the limit otherwise."""
        return self.rate.burst if self.algorithm == "gcra" else self.rate.limit


def expected(scenario: Scenario, step: Step) -> Verdict:
    return Verdict(step.allowed, scenario.limit, step.remaining, step.reset_after, step.retry_after)


def ok(at: float, key: str, remaining: int, reset_after: float, cost: int = 1) -> Step:
    return Step(at, key, cost, True, remaining, reset_after)


def no(
    at: float, key: str, remaining: int, reset_after: float, retry_after: float, cost: int = 1
) -> Step:
    return Step(at, key, cost, False, remaining, reset_after, retry_after)


def peek(
    at: float, key: str, allowed: bool, remaining: int, reset_after: float, retry_after: float = 0.0
) -> Step:
    return Step(at, key, 1, allowed, remaining, reset_after, retry_after, peek=True)


# --- gcra: T = ceil(P / limit), tau = burst * T; new = max(tat, now) + n*T, admitted iff
# new - tau <= now; remaining = (now + tau - tat) // T; reset = tat - now; retry = new - tau - now.

GCRA_BURST_AND_REFILL = Scenario(
    "gcra_burst_and_refill",
    "gcra",
    Rate(5, 10.0, 5),  # T = 2 s, tau = 10 s
    (
        ok(100.0, "a", 4, 2.0),  # tat 102
        ok(100.0, "a", 3, 4.0),
        ok(100.0, "a", 2, 6.0),
        ok(100.0, "a", 1, 8.0),
        ok(100.0, "a", 0, 10.0),  # tat 110: the burst is spent
        no(100.0, "a", 0, 10.0, 2.0),  # new 112, allowed at 102
        no(101.999999, "a", 0, 8.000001, 0.000001),  # one microsecond early
        ok(102.0, "a", 0, 10.0),  # exactly at now + retry_after; the refusals counted nothing
        no(102.0, "a", 0, 10.0, 2.0),
        peek(103.0, "a", False, 0, 9.0, 1.0),  # tat 112: allowed at 104
        ok(103.0, "b", 4, 2.0),  # another key has its own bucket
        ok(110.0, "a", 3, 4.0),  # tat 112 -> 114; (110 + 10 - 114) // 2 = 3
        peek(111.0, "a", True, 2, 5.0),  # would be tat 116: (111 + 10 - 116) // 2 = 2
    ),
)

GCRA_COST = Scenario(
    "gcra_cost",
    "gcra",
    Rate(10, 1.0, 10),  # T = 0.1 s (100_000 us, exact), tau = 1 s
    (
        ok(1000.0, "a", 7, 0.3, cost=3),
        ok(1000.0, "a", 0, 1.0, cost=7),  # all ten at once: no float drift loses one
        no(1000.0, "a", 0, 1.0, 0.1),
        no(1000.5, "a", 5, 0.5, 1.0, cost=11),  # more than the burst: never; retry = period
        ok(1000.5, "a", 0, 1.0, cost=5),
        no(1000.6, "a", 1, 0.9, 0.1, cost=2),  # refused, though a hit of cost 1 would pass
        ok(1000.6, "a", 0, 1.0),
        ok(1002.0, "a", 0, 1.0, cost=10),  # bucket full again (tat 1001.6 <= now)
        no(1002.999999, "a", 9, 0.000001, 0.000001, cost=10),
        ok(1003.0, "a", 0, 1.0, cost=10),
    ),
)

GCRA_BURST_ABOVE_LIMIT = Scenario(
    "gcra_burst_above_limit",
    "gcra",
    Rate(2, 1.0, 4),  # T = 0.5 s, tau = 2 s: 4 at once, then 2 per second
    (
        ok(50.0, "a", 3, 0.5),
        ok(50.0, "a", 2, 1.0),
        ok(50.0, "a", 1, 1.5),
        ok(50.0, "a", 0, 2.0),
        no(50.0, "a", 0, 2.0, 0.5),
        ok(50.5, "a", 0, 2.0),  # tat 52.5
        ok(51.5, "a", 1, 1.5),  # tat 53; (51.5 + 2 - 53) // 0.5 = 1
        no(51.5, "a", 1, 1.5, 0.5, cost=2),
    ),
)

GCRA_INTERVAL_ROUNDS_UP = Scenario(
    "gcra_interval_rounds_up",
    "gcra",
    Rate(3, 1.0, 3),  # T = ceil(1_000_000 / 3) = 333_334 us, tau = 1_000_002 us
    (
        ok(10.0, "a", 2, 0.333334),
        ok(10.0, "a", 1, 0.666668),
        ok(10.0, "a", 0, 1.000002),
        no(10.0, "a", 0, 1.000002, 0.333334),  # new 11.333336, allowed at 10.333334
        no(10.333333, "a", 0, 0.666669, 0.000001),
        ok(10.333334, "a", 0, 1.000002),
    ),
)

GCRA_LONG_IDLE = Scenario(
    "gcra_long_idle",
    "gcra",
    Rate(100, 60.0, 100),  # T = 0.6 s
    (
        ok(5.0, "a", 99, 0.6),
        ok(5.0, "a", 49, 30.6, cost=50),
        ok(1_000_000.0, "a", 99, 0.6),  # days later: a full bucket
        ok(86_400_000.0, "a", 0, 60.0, cost=100),  # 1000 days in
        no(86_400_000.0, "b", 100, 0.0, 60.0, cost=101),  # a fresh key, a cost above the burst
    ),
)

# --- sliding_window: windows [k*P, (k+1)*P); e = now - start; estimate = current +
# ceil(previous * (P - e) / P); admitted iff estimate + n <= limit; remaining = limit - estimate
# after the hit; reset = end of the next window if current > 0, of this one if only previous > 0.

WINDOW_EDGES = Scenario(
    "sliding_window_edges",
    "sliding_window",
    Rate(10, 10.0, 10),
    (
        ok(20.0, "a", 6, 20.0, cost=4),  # window [20, 30): current 4
        ok(25.0, "a", 0, 15.0, cost=6),  # current 10
        # Window [30, 40) starts with previous 10: 10 * (10 - e) / 10 + 1 <= 10 from e = 1 s.
        no(29.999999, "a", 0, 10.000001, 1.000001),
        no(30.999999, "a", 0, 9.000001, 0.000001),  # ceil(9.000001) + 1 = 11
        ok(31.0, "a", 0, 19.0),  # 9 + 1 = 10; current 1
        ok(35.0, "a", 1, 15.0, cost=3),  # 1 + 5 + 3 = 9; current 4
        no(35.0, "a", 1, 15.0, 1.0, cost=2),  # 4 + 5 + 2 = 11; 4 + 4 + 2 = 10 at e = 6
        ok(36.0, "a", 0, 14.0, cost=2),  # the refusal counted nothing; current 6
        ok(36.0, "b", 0, 14.0, cost=10),  # another key, the whole quota at once
        no(36.0, "b", 0, 14.0, 10.0, cost=11),  # more than the limit: never; retry = period
        peek(39.0, "a", True, 2, 11.0),  # 6 + ceil(1) + 1 = 8
        ok(40.0, "a", 0, 20.0, cost=4),  # window [40, 50): previous 6, 6 + 4 = 10
        # 4 + ceil(6 * (10 - e) / 10) + 1 <= 10 iff 6 * (10 - e) <= 50 iff e >= 1.666667 (in us)
        no(40.0, "a", 0, 20.0, 1.666667),
        no(41.666666, "a", 0, 18.333334, 0.000001),
        ok(41.666667, "a", 0, 18.333333),
        ok(1_000_000.0, "a", 9, 20.0),  # long idle: both windows are long gone
        ok(1_000_025.0, "a", 9, 15.0),  # window [1_000_020, 1_000_030), nothing before
        ok(1_000_032.5, "a", 8, 17.5),  # previous 1: ceil(1 * 7.5 / 10) + 1 = 2
    ),
)

WINDOW_PREVIOUS_DECAYS = Scenario(
    "sliding_window_previous_decays",
    "sliding_window",
    Rate(4, 1.0, 4),  # P = 1 s
    (
        ok(7.0, "a", 0, 2.0, cost=4),
        no(7.5, "a", 0, 1.5, 1.5, cost=4),  # next window: ceil(4 * (1 - e)) + 4 <= 4 at e = 1
        no(8.0, "a", 0, 1.0, 1.0, cost=4),  # previous 4, room 0: at the end of this window
        no(8.25, "a", 1, 0.75, 0.25, cost=2),  # ceil(3) + 2 = 5; ceil(2) + 2 = 4 at e = 0.5
        ok(8.5, "a", 0, 1.5, cost=2),  # current 2
        ok(9.999999, "a", 2, 1.000001),  # previous 2: ceil(2 * 0.000001) + 1 = 2
        ok(10.0, "a", 2, 2.0),  # previous 1 (window [9, 10)): ceil(1 * 1) + 1 = 2
    ),
)

# --- sliding_log: an admitted hit at t counts while now - t < P; admitted iff count + n <= limit;
# remaining = limit - count after; reset = newest + P - now; retry = the expiry of the
# (count + n - limit)-th oldest entry.

LOG_EXACT = Scenario(
    "sliding_log_exact",
    "sliding_log",
    Rate(3, 10.0, 3),
    (
        ok(100.0, "a", 2, 10.0),
        ok(102.0, "a", 0, 10.0, cost=2),  # log 100, 102, 102
        no(105.0, "a", 0, 7.0, 5.0),  # 100 expires at 110
        no(109.999999, "a", 0, 2.000001, 0.000001),
        ok(110.0, "a", 0, 10.0),  # 100 no longer counts at 100 + P; log 102, 102, 110
        no(110.0, "a", 0, 10.0, 2.0, cost=2),  # the second 102 must go: at 112
        ok(112.0, "a", 0, 10.0, cost=2),  # log 110, 112, 112
        no(112.0, "a", 0, 10.0, 10.0, cost=4),  # more than the limit: never; retry = period
        ok(112.0, "b", 0, 10.0, cost=3),  # another key
        peek(115.0, "a", False, 0, 7.0, 5.0),
        ok(500.0, "a", 2, 10.0),  # long idle: an empty log
        ok(501.0, "a", 0, 10.0, cost=2),  # log 500, 501, 501
        no(501.5, "a", 0, 9.5, 8.5),
        ok(510.0, "a", 0, 10.0),  # 500 expired; the refusal at 501.5 counted nothing
    ),
)

SCENARIOS: tuple[Scenario, ...] = (
    GCRA_BURST_AND_REFILL,
    GCRA_COST,
    GCRA_BURST_ABOVE_LIMIT,
    GCRA_INTERVAL_ROUNDS_UP,
    GCRA_LONG_IDLE,
    WINDOW_EDGES,
    WINDOW_PREVIOUS_DECAYS,
    LOG_EXACT,
)


# --- lockouts: max_failures within window lock for min(base * 2**(streak - 1), ceiling); failures
# while locked count for nothing; the streak is forgotten window + ceiling after the last failure,
# or on success (which never lifts a running lock).


class LockoutStep(NamedTuple):
    at: float
    op: Literal["failure", "locked_for", "success"]
    key: str
    result: float = 0.0


@dataclass(frozen=True)
class LockoutScenario:
    name: str
    policy: LockoutPolicy
    steps: tuple[LockoutStep, ...]


LOGIN_POLICY = LockoutPolicy(max_failures=3, window=60.0, base=10.0, ceiling=40.0)

LOCKOUT_BACKOFF = LockoutScenario(
    "lockout_backoff",
    LOGIN_POLICY,
    (
        LockoutStep(100.0, "failure", "a"),
        LockoutStep(100.0, "failure", "a"),
        LockoutStep(101.0, "failure", "a", 10.0),  # streak 1: locked until 111
        LockoutStep(105.0, "locked_for", "a", 6.0),
        LockoutStep(106.0, "failure", "a"),  # while locked: counts for nothing
        LockoutStep(106.0, "locked_for", "b"),  # another key
        LockoutStep(110.5, "locked_for", "a", 0.5),
        LockoutStep(111.0, "locked_for", "a"),
        LockoutStep(111.0, "failure", "a"),
        LockoutStep(112.0, "failure", "a"),
        LockoutStep(113.0, "failure", "a", 20.0),  # streak 2: until 133
        LockoutStep(133.0, "failure", "a"),
        LockoutStep(133.0, "failure", "a"),
        LockoutStep(133.0, "failure", "a", 40.0),  # streak 3: until 173
        LockoutStep(173.0, "failure", "a"),
        LockoutStep(173.0, "failure", "a"),
        LockoutStep(173.0, "failure", "a", 40.0),  # streak 4: the ceiling; last failure 173
        LockoutStep(272.5, "failure", "a"),  # 99.5 s after: the streak still counts
        LockoutStep(272.5, "failure", "a"),
        LockoutStep(272.5, "failure", "a", 40.0),  # streak 5; until 312.5
        LockoutStep(372.5, "failure", "a"),  # window + ceiling after: forgotten
        LockoutStep(372.5, "failure", "a"),
        LockoutStep(372.5, "failure", "a", 10.0),
    ),
)

LOCKOUT_WINDOW = LockoutScenario(
    "lockout_window",
    LOGIN_POLICY,
    (
        LockoutStep(0.0, "failure", "a"),
        LockoutStep(30.0, "failure", "a"),
        LockoutStep(60.0, "failure", "a"),  # the failure at 0 left the window at 60
        LockoutStep(89.5, "failure", "a", 10.0),  # 30, 60, 89.5
        LockoutStep(89.5, "locked_for", "a", 10.0),
    ),
)

LOCKOUT_SUCCESS = LockoutScenario(
    "lockout_success",
    LOGIN_POLICY,
    (
        LockoutStep(0.0, "failure", "a"),
        LockoutStep(0.0, "failure", "a"),
        LockoutStep(1.0, "success", "a"),  # forgets both failures
        LockoutStep(2.0, "failure", "a"),
        LockoutStep(2.0, "failure", "a"),
        LockoutStep(3.0, "failure", "a", 10.0),  # until 13
        LockoutStep(4.0, "success", "a"),  # forgets the streak, keeps the lock
        LockoutStep(4.0, "locked_for", "a", 9.0),
        LockoutStep(13.0, "failure", "a"),
        LockoutStep(13.0, "failure", "a"),
        LockoutStep(13.0, "failure", "a", 10.0),  # streak 1 again, not 2
        LockoutStep(13.0, "success", "b"),  # a key never seen
        LockoutStep(13.0, "locked_for", "b"),
    ),
)

LOCKOUT_SCENARIOS: tuple[LockoutScenario, ...] = (LOCKOUT_BACKOFF, LOCKOUT_WINDOW, LOCKOUT_SUCCESS)
