"""The rate-limiting contract every algorithm and every storage implements.

A limiter is bound to one :class:`Rate` and answers, per key, whether a hit of some cost is
admitted now, as a :class:`Verdict` that carries everything the client must be told (remaining
quota, when it resets, when to retry). In-process limiters answer synchronously
(:class:`Limiter`); shared ones answer through the network (:class:`AsyncLimiter`). Both take an
injectable clock, so that tests move time by hand.

Semantics shared by every implementation (memory and Redis give the same verdicts for the same
sequence of hits and times; ``tests/ratelimit/scenarios.py`` holds the vectors both replay):

- Time is counted in whole microseconds: ``now`` is ``clock() * 1_000_000`` to the nearest
  (``algorithms.microseconds``; Redis ``TIME`` gives them), ``P`` is ``period * 1_000_000`` to
  the nearest, and every formula below is exact integer arithmetic (``//`` floors); durations
  are returned as seconds, ``microseconds / 1_000_000``.
  In float seconds, a period that is no power of two in binary (``10/s``) accumulates rounding
  and a bucket of 10 admits 9 hits at once. Rates of more than 1,000,000 hits per second are
  refused at construction.
- A hit costs ``n >= 1`` (``ValueError`` otherwise). A hit whose cost exceeds the capacity (the
  burst for ``gcra``, the limit otherwise) can never be admitted: it is refused, counts nothing,
  and gets ``retry_after = period`` (finite, for ``Retry-After``); policies should refuse such
  costs when they are configured. A refused hit never counts.
- ``peek`` returns exactly the verdict a hit of cost 1 would get now, and changes nothing.
- ``gcra`` (token bucket): ``rate.limit`` hits per ``rate.period`` sustained, at most
  ``rate.burst`` at once from a full bucket. Emission interval ``T = ceil(P / limit)`` (rounded
  up, so the sustained rate never exceeds the configured one), ``tau = burst * T``; per key the
  theoretical arrival time ``tat`` (absent, or ``tat <= now``: a full bucket). A hit of cost
  ``n`` at ``now``: ``new = max(tat, now) + n*T``; admitted iff ``new - tau <= now``, and then
  ``tat = new``. ``limit`` is ``burst``; ``remaining = (now + tau - max(tat, now)) // T`` with
  ``tat`` after the hit (the hits of cost 1 still admitted now; at least 0); ``reset_after`` is
  ``max(tat, now) - now`` (until the bucket is full again); ``retry_after`` (refused only) is
  ``new - tau - now``.
- ``sliding_window`` (counter approximation): windows ``[k*P, (k+1)*P)``; per key the counts
  (sums of admitted costs) of the current window and the one before it (older ones are 0). At
  ``e = now - start`` into the current window the estimate is ``current + previous * (P - e) / P``;
  admitted iff ``estimate + n <= limit``, then ``current += n``. Since ``limit`` and ``n`` are
  whole, that is evaluated exactly as ``current + ceil(previous * (P - e) / P) + n <= limit``.
  ``limit`` is ``rate.limit`` (``burst`` is unused); ``remaining = limit - estimate`` after the hit,
  with that ceiling (at least 0); ``reset_after`` is until the estimate is 0: the end of the next
  window if ``current > 0``, else the end of this one if ``previous > 0``, else 0;
  ``retry_after`` (refused only) is until the earliest time a hit of the same cost is admitted,
  exactly (a hit then is admitted, one microsecond before is not): with
  ``room = limit - current - n``, at ``start + P - room * P // previous`` if ``room >= 0``, else
  in the next window, at ``start + 2*P - (limit - n) * P // current``. Products such as
  ``limit * P`` stay exact in Lua's doubles while below 2**53.
- ``sliding_log`` (exact): the timestamps of admitted hits (a hit of cost ``n`` is ``n`` entries);
  an entry at ``t`` counts while ``now - t < P``. Admitted iff ``count + n <= limit``, then ``n``
  entries at ``now``. ``remaining = limit - count`` after the hit; ``reset_after`` is until the
  newest entry expires (``newest + P - now``, 0 when none counts); ``retry_after`` is until the
  ``(count + n - limit)``-th oldest entry expires. For ``limit <= SLIDING_LOG_MAX_LIMIT`` only
  (``ValueError`` at construction otherwise).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

Clock = Callable[[], float]
"""Seconds as a float. Memory limiters default to ``time.monotonic``; shared ones to the
server's own clock, so that every gateway instance agrees on time."""

Algorithm = Literal["gcra", "sliding_window", "sliding_log"]

ALGORITHMS: tuple[Algorithm, ...] = ("gcra", "sliding_window", "sliding_log")

SLIDING_LOG_MAX_LIMIT = 10_000
"""The exact log keeps one timestamp per admitted hit; above this, use another algorithm."""

_UNITS = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([a-z]+?)s?\s*$")


@dataclass(frozen=True, slots=True)
class Rate:
    """``limit`` hits per ``period`` seconds; ``burst`` hits at once (token bucket only)."""

    limit: int
    period: float
    burst: int

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError("a rate needs a limit of at least 1")
        if not (self.period > 0 and math.isfinite(self.period)):
            raise ValueError("a rate needs a positive, finite period")
        if self.burst < 1:
            raise ValueError("a rate needs a burst of at least 1")

    @classmethod
    def parse(cls, text: str, burst: int | None = None) -> Rate:
        """``"100/minute"``, ``"10/s"``, ``"1000/5m"``; ``burst`` defaults to the limit."""
        match = _RATE.match(text.lower())
        if match is None or match.group(3) not in _UNITS:
            raise ValueError(
                "expected a rate such as '100/minute', '10/s' or '1000/5m' "
                "(units: s, m, h, d, second, minute, hour, day)"
            )
        limit = int(match.group(1))
        period = _UNITS[match.group(3)] * int(match.group(2) or 1)
        return cls(limit, period, burst if burst is not None else limit)

    @property
    def interval(self) -> float:
        """Seconds between hits at the sustained rate (GCRA's emission interval)."""
        return self.period / self.limit

    def __str__(self) -> str:
        text = f"{self.limit}/{self.period:g}s"
        return text if self.burst == self.limit else f"{text} burst {self.burst}"


class Verdict:
    """One decision on one key.

    ``limit`` is the quota clients are told (``RateLimit-Policy`` ``q``), ``remaining`` what is
    left of it after this hit, ``reset_after`` the seconds until the quota is whole again
    (``RateLimit`` ``t``), ``retry_after`` the seconds until the same hit would be admitted
    (0 when admitted; ``Retry-After`` is its ceiling, never earlier).

    A plain slotted class, not a frozen dataclass: one is built per hit, and a frozen dataclass's
    ``__init__`` (``object.__setattr__`` per field) cost more than all the rest of a hit.
    Treat it as immutable.
    """

    __slots__ = ("allowed", "limit", "remaining", "reset_after", "retry_after")

    def __init__(
        self,
        allowed: bool,
        limit: int,
        remaining: int,
        reset_after: float,
        retry_after: float = 0.0,
    ) -> None:
        self.allowed = allowed
        self.limit = limit
        self.remaining = remaining
        self.reset_after = reset_after
        self.retry_after = retry_after

    def _fields(self) -> tuple[bool, int, int, float, float]:
        return (self.allowed, self.limit, self.remaining, self.reset_after, self.retry_after)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Verdict):
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return (
            f"Verdict(allowed={self.allowed!r}, limit={self.limit!r}, "
            f"remaining={self.remaining!r}, reset_after={self.reset_after!r}, "
            f"retry_after={self.retry_after!r})"
        )


class Limiter(Protocol):
    """An in-process limiter for one rate."""

    @property
    def rate(self) -> Rate: ...

    def hit(self, key: str, cost: int = 1) -> Verdict:
        """Count a hit of ``cost`` against ``key`` if it is admitted; say so either way."""
        ...

    def peek(self, key: str) -> Verdict:
        """What a hit of cost 1 would get now, without counting anything."""
        ...


class AsyncLimiter(Protocol):
    """A limiter whose state is shared (Redis): same contract, answered over the network."""

    @property
    def rate(self) -> Rate: ...

    async def hit(self, key: str, cost: int = 1) -> Verdict: ...

    async def peek(self, key: str) -> Verdict: ...


def monotonic() -> float:
    return time.monotonic()


@dataclass(frozen=True, slots=True)
class LockoutPolicy:
    """Lock a key out after ``max_failures`` failures within ``window`` seconds.

    The n-th lockout in a row lasts ``min(base * 2**(n-1), ceiling)`` seconds (growing back-off).
    The streak is forgotten after ``window + ceiling`` seconds without a failure, or on success.
    """

    max_failures: int
    window: float
    base: float
    ceiling: float

    def __post_init__(self) -> None:
        if self.max_failures < 1:
            raise ValueError("max_failures must be at least 1")
        if not (0 < self.base <= self.ceiling) or self.window <= 0:
            raise ValueError("expected window > 0 and 0 < base <= ceiling")

    def duration(self, streak: int) -> float:
        """How long the ``streak``-th consecutive lockout (1-based) lasts."""
        return min(self.base * 2.0 ** min(streak - 1, 62), self.ceiling)


class Lockout(Protocol):
    """Failed-attempt counting with lockout (login and token endpoints), in process."""

    @property
    def policy(self) -> LockoutPolicy: ...

    def locked_for(self, key: str) -> float:
        """Seconds ``key`` stays locked out; 0 when it may try."""
        ...

    def failure(self, key: str) -> float:
        """Record a failed attempt; the lockout it started in seconds, or 0."""
        ...

    def success(self, key: str) -> None:
        """A successful attempt: forget the failures and the streak."""
        ...


class AsyncLockout(Protocol):
    """The same, shared between instances (Redis)."""

    @property
    def policy(self) -> LockoutPolicy: ...

    async def locked_for(self, key: str) -> float: ...

    async def failure(self, key: str) -> float: ...

    async def success(self, key: str) -> None: ...
