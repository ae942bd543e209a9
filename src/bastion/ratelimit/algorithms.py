"""The three rate-limiting algorithms as arithmetic on one key's state, apart from any storage.

Each function takes the algorithm's :class:`Params` (derived once from a :class:`Rate`), the key's
state (``None`` when the key has none), ``now`` and the hit's cost, and returns the key's new state
(``None`` when the hit was refused: nothing to store) with the :class:`Verdict`. The memory storage
keeps the states in a table; the Redis scripts do the same arithmetic in Lua. The semantics are in
:mod:`bastion.ratelimit.core`'s docstring.

Time is in whole microseconds (``now = microseconds(clock())``), so that every comparison is
exact: with float seconds, a period that is not a power of two in binary (``10/s``, an emission
interval of 0.1 s) accumulates rounding, and a bucket of 10 admits 9 hits at once. Integer
microseconds are also what Redis's ``TIME`` gives, and stay exact in Lua's doubles (below 2**53,
about 285 years).
"""

from __future__ import annotations

from bisect import bisect_right
from math import floor
from typing import Final

from bastion.ratelimit.core import SLIDING_LOG_MAX_LIMIT, Algorithm, Rate, Verdict

US: Final = 1_000_000
"""Microseconds per second."""

GcraState = int
"""The theoretical arrival time ``tat``; a key whose ``tat <= now`` is the same as an absent one."""

WindowState = tuple[int, int, int]
"""``(start, previous, current)``: the current window's start, the counts of the previous and
current windows."""

LogState = list[int]
"""The timestamps of admitted hits, oldest first; a hit of cost ``n`` appears ``n`` times."""


def microseconds(seconds: float) -> int:
    """A clock reading or a duration in whole microseconds, to the nearest (halves up: ``round``
    would halve to even, at three times the cost on the hot path)."""
    return floor(seconds * 1_000_000 + 0.5)


class Params:
    """One rate's constants, in microseconds, as every algorithm reads them on each hit."""

    __slots__ = (
        "algorithm",
        "capacity",
        "interval",
        "period",
        "rate",
        "refused_retry",
        "tolerance",
    )

    def __init__(self, algorithm: Algorithm, rate: Rate) -> None:
        period = microseconds(rate.period)
        if period < rate.limit:
            raise ValueError("a rate of more than 1,000,000 hits per second cannot be limited")
        if algorithm == "sliding_log" and rate.limit > SLIDING_LOG_MAX_LIMIT:
            raise ValueError(
                f"sliding_log keeps one timestamp per hit: limit {rate.limit} exceeds "
                f"{SLIDING_LOG_MAX_LIMIT}; use gcra or sliding_window"
            )
        self.algorithm: Final = algorithm
        self.rate: Final = rate
        self.period: Final = period
        # Rounded up, so that the sustained rate never exceeds the configured one.
        self.interval: Final = -(-period // rate.limit)
        self.tolerance: Final = rate.burst * self.interval
        self.capacity: Final = rate.burst if algorithm == "gcra" else rate.limit
        """The quota clients are told, and the largest cost a hit can ever be admitted with."""
        self.refused_retry: Final = rate.period
        """``retry_after`` for a hit whose cost exceeds the capacity (it is never admitted)."""


def verdict(
    allowed: bool, limit: int, remaining: int, reset_after: float, retry_after: float = 0.0
) -> Verdict:
    return Verdict(allowed, limit, remaining, reset_after, retry_after)


def _refuse_cost(cost: int) -> None:
    raise ValueError(f"a hit costs at least 1, got {cost}")


# --- gcra ---------------------------------------------------------------------------------------


def gcra(p: Params, tat: GcraState | None, now: int, cost: int) -> tuple[GcraState | None, Verdict]:
    """A hit on a GCRA key: its new ``tat`` if admitted, and the verdict."""
    if cost < 1:
        _refuse_cost(cost)
    base = tat if tat is not None and tat > now else now
    new = base + cost * p.interval
    allow_at = new - p.tolerance
    if allow_at <= now:  # never with a cost above the burst
        return new, verdict(
            True, p.capacity, (now + p.tolerance - new) // p.interval, (new - now) / US
        )
    remaining = max(0, (now + p.tolerance - base) // p.interval)
    retry = (allow_at - now) / US if cost <= p.capacity else p.refused_retry
    return None, verdict(False, p.capacity, remaining, (base - now) / US, retry)


def gcra_expired(p: Params, tat: GcraState, now: float) -> bool:
    return tat <= now


# --- sliding window (counter approximation) -----------------------------------------------------


def sliding_window(
    p: Params, state: WindowState | None, now: int, cost: int
) -> tuple[WindowState | None, Verdict]:
    """A hit on a sliding-window key: its new ``(start, previous, current)`` if admitted, and the
    verdict."""
    if cost < 1:
        _refuse_cost(cost)
    period = p.period
    start = now - now % period
    previous = current = 0
    if state is not None:
        if state[0] == start:
            previous, current = state[1], state[2]
        elif state[0] == start - period:
            previous = state[2]
    # The exact estimate is fractional; ``estimate + cost <= limit`` holds exactly when it
    # holds for its ceiling, since the limit and the cost are whole.
    estimate = current - (-previous * (start + period - now) // period)
    limit = p.capacity
    if estimate + cost <= limit:
        # Whole again once this window's count has decayed through the next window.
        reset = (start + 2 * period - now) / US
        return (start, previous, current + cost), verdict(
            True, limit, limit - estimate - cost, reset
        )
    room = limit - current - cost
    if cost > limit:
        retry = p.refused_retry
    elif room >= 0:
        # Refused with room left: ``previous`` (> room) must decay until its share fits.
        retry = (start + period - room * period // previous - now) / US
    else:
        # Not in this window: in the next one, this window's count becomes the previous one.
        retry = (start + 2 * period - (limit - cost) * period // current - now) / US
    if current:
        reset = (start + 2 * period - now) / US
    elif previous:
        reset = (start + period - now) / US
    else:
        reset = 0.0
    return None, verdict(False, limit, max(0, limit - estimate), reset, retry)


def window_expired(p: Params, state: WindowState, now: float) -> bool:
    return state[0] + 2 * p.period <= now


# --- sliding log (exact) ------------------------------------------------------------------------


def sliding_log(
    p: Params, log: LogState | None, now: int, cost: int, record: bool = True
) -> tuple[LogState | None, Verdict]:
    """A hit on a sliding-log key: its log if admitted, and the verdict. The log is updated in
    place (copying it would cost ``limit`` per hit): expired entries are dropped, and an admitted
    hit is appended unless ``record`` is false (a peek)."""
    if cost < 1:
        _refuse_cost(cost)
    if log is None:
        log = []
    elif log and log[0] <= now - p.period:
        del log[: bisect_right(log, now - p.period)]
    count = len(log)
    limit = p.capacity
    if count + cost <= limit:
        if record:
            if cost == 1:
                log.append(now)
            else:
                log.extend([now] * cost)
        return log, verdict(True, limit, limit - count - cost, p.period / US)
    reset = (log[-1] + p.period - now) / US if log else 0.0
    if cost > limit:
        retry = p.refused_retry
    else:
        retry = (log[count + cost - limit - 1] + p.period - now) / US
    return None, verdict(False, limit, limit - count, reset, retry)


def log_expired(p: Params, log: LogState, now: float) -> bool:
    return not log or log[-1] + p.period <= now
