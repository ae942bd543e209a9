"""What rate limiting does while its shared backend (Redis) is gone: the failure policy.

- ``closed`` (the default): the limiter raises :class:`BackendUnavailable`; the guard chain
  answers ``503 guard.unavailable`` with ``Retry-After``. Nothing is admitted uncounted.
- ``open``: every hit is admitted, with ``remaining`` the whole quota (a lockout locks nobody).
- ``local``: an in-process limiter (or lockout) decides, per gateway instance, until Redis is back.

One :class:`BackendHealth` per backend follows its state, from the client's connection events and
from the calls' own results, and reports each transition once: one log line on the
``bastion.ratelimit`` logger and one security event (``ratelimit.backend_unavailable``, outcome
``unknown``; ``ratelimit.backend_recovered``, outcome ``success``), however many limiters and
requests share that backend. Recovery needs no restart: the client reconnects in the background,
and the first decision Redis answers again counts there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Literal

from bastion.backends.redis import RedisClient
from bastion.errors import BackendUnavailable
from bastion.observability.events import EventSink, SecurityEvent
from bastion.ratelimit.core import (
    AsyncLimiter,
    AsyncLockout,
    Limiter,
    Lockout,
    LockoutPolicy,
    Rate,
    Verdict,
)

logger = logging.getLogger("bastion.ratelimit")

FailurePolicy = Literal["closed", "open", "local"]
POLICIES: tuple[FailurePolicy, ...] = ("closed", "open", "local")
_CONSEQUENCE: dict[FailurePolicy, str] = {
    "closed": "rate-limited requests are refused (fail closed)",
    "open": "rate limits admit every request (fail open)",
    "local": "rate limits count in each process (fail local)",
}


class BackendHealth:
    """Up or down, as the callers of one backend see it; each transition is reported once."""

    def __init__(
        self, events: EventSink, *, policy: FailurePolicy = "closed", backend: str = "redis"
    ) -> None:
        if policy not in POLICIES:
            raise ValueError(f"expected a failure policy among {', '.join(POLICIES)}")
        self.events = events
        self.policy: FailurePolicy = policy
        self.backend = backend
        self.up = True
        self.since = time.monotonic()
        self.transitions = 0

    def watch(self, client: RedisClient) -> None:
        """Follow ``client``'s connection: lost is down, re-established is up."""
        client.add_listener(self._on_state)

    def _on_state(self, up: bool, error: BackendUnavailable | None) -> None:
        if up:
            self.recovered()
        else:
            self.failed(error or BackendUnavailable(f"{self._name} connection lost"))

    @property
    def _name(self) -> str:
        return "Redis" if self.backend == "redis" else self.backend

    def failed(self, error: BackendUnavailable) -> None:
        """A call failed: the backend is down (reported on the first failure only)."""
        if not self.up:
            return
        self.up = False
        self.since = time.monotonic()
        self.transitions += 1
        # error.message is bastion's own text: never a URL, never a password.
        logger.warning(
            "%s unavailable (%s); until it is back, %s",
            self._name,
            error.message,
            _CONSEQUENCE[self.policy],
        )
        self.events.emit(
            SecurityEvent(
                action="ratelimit.backend_unavailable",
                outcome="unknown",
                timestamp=time.time(),
                guard="rate_limit",
                reason=error.message,
                fields={"backend": self.backend, "on_backend_failure": self.policy},
            )
        )

    def recovered(self) -> None:
        """The backend answers again (reported on the first success after a failure only)."""
        if self.up:
            return
        down_for = time.monotonic() - self.since
        self.up = True
        self.since = time.monotonic()
        self.transitions += 1
        logger.warning(
            "%s available again after %.1f s; rate limits count there again", self._name, down_for
        )
        self.events.emit(
            SecurityEvent(
                action="ratelimit.backend_recovered",
                outcome="success",
                timestamp=time.time(),
                guard="rate_limit",
                fields={"backend": self.backend, "down_seconds": round(down_for, 3)},
            )
        )


class FailoverLimiter:
    """An :class:`AsyncLimiter` that follows ``health.policy`` while its backend is down.

    ``fallback`` is the in-process limiter of the ``local`` policy (same algorithm and rate:
    ``memory_limiter(algorithm, rate)``).
    """

    __slots__ = ("_capacity", "_decide", "_fallback", "_health", "_limiter", "_policy")

    def __init__(
        self, limiter: AsyncLimiter, health: BackendHealth, *, fallback: Limiter | None = None
    ) -> None:
        if health.policy == "local" and fallback is None:
            raise ValueError("the 'local' failure policy needs a fallback limiter")
        rate = limiter.rate
        algorithm = getattr(limiter, "algorithm", None)
        self._capacity = rate.burst if algorithm == "gcra" else rate.limit
        self._limiter = limiter
        # A Redis limiter's decide() is its hit() without the coroutine around the future.
        decide = getattr(limiter, "decide", None)
        self._decide: Callable[[str, int], Awaitable[Verdict]] = (
            decide if callable(decide) else limiter.hit
        )
        self._health = health
        self._policy = health.policy
        self._fallback = fallback if health.policy == "local" else None

    @property
    def rate(self) -> Rate:
        return self._limiter.rate

    async def hit(self, key: str, cost: int = 1) -> Verdict:
        try:
            verdict = await self._decide(key, cost)
        except BackendUnavailable as exc:
            self._health.failed(exc)
            if self._policy == "closed":
                raise
            if self._fallback is not None:
                return self._fallback.hit(key, cost)
            return Verdict(True, self._capacity, self._capacity, 0.0)
        if not self._health.up:
            self._health.recovered()
        return verdict

    async def peek(self, key: str) -> Verdict:
        try:
            verdict = await self._limiter.peek(key)
        except BackendUnavailable as exc:
            self._health.failed(exc)
            if self._policy == "closed":
                raise
            if self._fallback is not None:
                return self._fallback.peek(key)
            return Verdict(True, self._capacity, self._capacity, 0.0)
        if not self._health.up:
            self._health.recovered()
        return verdict


class FailoverLockout:
    """An :class:`AsyncLockout` that follows ``health.policy`` while its backend is down:
    ``closed`` raises, ``open`` locks nobody out, ``local`` counts in ``fallback``."""

    __slots__ = ("_fallback", "_health", "_lockout", "_policy")

    def __init__(
        self, lockout: AsyncLockout, health: BackendHealth, *, fallback: Lockout | None = None
    ) -> None:
        if health.policy == "local" and fallback is None:
            raise ValueError("the 'local' failure policy needs a fallback lockout")
        self._lockout = lockout
        self._health = health
        self._policy = health.policy
        self._fallback = fallback if health.policy == "local" else None

    @property
    def policy(self) -> LockoutPolicy:
        return self._lockout.policy

    def _down(self, error: BackendUnavailable) -> Lockout | None:
        """Report ``error``; the lockout that decides instead (``None``: open)."""
        self._health.failed(error)
        if self._policy == "closed":
            raise error
        return self._fallback

    async def locked_for(self, key: str) -> float:
        try:
            seconds = await self._lockout.locked_for(key)
        except BackendUnavailable as exc:
            fallback = self._down(exc)
            return fallback.locked_for(key) if fallback is not None else 0.0
        if not self._health.up:
            self._health.recovered()
        return seconds

    async def failure(self, key: str) -> float:
        try:
            seconds = await self._lockout.failure(key)
        except BackendUnavailable as exc:
            fallback = self._down(exc)
            return fallback.failure(key) if fallback is not None else 0.0
        if not self._health.up:
            self._health.recovered()
        return seconds

    async def success(self, key: str) -> None:
        try:
            await self._lockout.success(key)
        except BackendUnavailable as exc:
            fallback = self._down(exc)
            if fallback is not None:
                fallback.success(key)
            return
        if not self._health.up:
            self._health.recovered()
