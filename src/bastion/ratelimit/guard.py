"""The rate-limit guards: request-rate policies, and in-flight requests per consumer.

``rate_limit`` walks the route's plan: each policy that applies counts one hit against its
partition (client IP as derived from trusted proxies only, consumer, API key, ...). The first
refusal stops the walk and answers 429 with ``Retry-After``; hits already counted on earlier
policies stay counted, as in every gateway that checks policies in turn. An admitted request gets
the IETF ``RateLimit-Policy`` / ``RateLimit`` fields on its response.

With in-memory limiters the check is synchronous (no coroutine per request); with shared ones
(Redis) it awaits the batched round trip.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable
from typing import ClassVar, Final, Protocol, cast

from bastion.errors import BackendUnavailable
from bastion.pipeline.decisions import ALLOW, Allow, Decision, Deny
from bastion.pipeline.guard import Phase
from bastion.pipeline.identity import IDENTITY, Identity
from bastion.pipeline.request import Request, StateKey
from bastion.pipeline.routing import ROUTE
from bastion.ratelimit.core import AsyncLimiter, Limiter, Verdict
from bastion.ratelimit.headers import allowed_headers, exceeded
from bastion.ratelimit.policy import Entry, PlanBook, Quota
from bastion.ratelimit.storage.memory import ConcurrencyLimiter, MemoryLimiter


class Storage(Protocol):
    """What a guard over shared counters starts and closes (the Redis connection)."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...


_MEMO_LIMIT: Final = 4096
"""Admitting decisions remembered per quota (then forgotten all at once)."""
_SECONDS_CAP: Final = 1 << 32

BACKEND_DOWN = Deny(
    503,
    "guard.unavailable",
    "Service Unavailable",
    "The rate limit could not be checked; the request was refused. Retry shortly.",
    headers=(("retry-after", "1"),),
    fields={"reason": "backend unavailable", "on_backend_failure": "closed"},
)
"""Redis is down and the policy is to fail closed: the gateway's trouble, so a 503 (never the
429 of a client's own limit). A decision, not an exception: the outage is logged once by the
storage's health, not once per request."""


class StorageLifecycle:
    """``start``/``close`` of the guard's shared storage, if it has one."""

    _storage: Storage | None

    async def start(self) -> None:
        if self._storage is not None:
            await self._storage.start()

    async def close(self) -> None:
        if self._storage is not None:
            await self._storage.close()


class RateLimitGuard(StorageLifecycle):
    """The ``rate_limit`` guard."""

    name: ClassVar[str] = "rate_limit"
    phase: ClassVar[Phase] = Phase.RATE_LIMIT
    requires_body: ClassVar[bool] = False

    def __init__(
        self,
        book: PlanBook,
        *,
        shared: bool,
        ietf: bool = True,
        legacy: bool = False,
        storage: Storage | None = None,
    ) -> None:
        self.fail_open = False
        self._storage = storage
        self._book = book
        self._shared = shared
        self._ietf = ietf
        self._legacy = legacy

    def check(self, request: Request) -> Decision | Awaitable[Decision]:
        route = request.state.get(ROUTE)
        plan = self._book.plan(route)
        if not plan:
            return ALLOW
        identity = request.state.get(IDENTITY)
        route_name = route.name if route is not None else ""
        if self._shared:
            return self._check_shared(request, plan, identity, route_name)
        tier = identity.tier if identity is not None else None
        if len(plan) == 1:
            return self._check_one(request, plan[0], identity, tier, route_name)
        applied: list[str] = []
        tightest: tuple[Quota, Verdict] | None = None
        for entry in plan:
            quota = self._quota(entry, request, tier)
            if quota is None:
                continue
            verdict = cast(Limiter, quota.limiter).hit(entry.key(request, identity, route_name))
            applied.append(quota.item)
            if not verdict.allowed:
                return self._refuse(applied, quota, verdict, entry, identity)
            if tightest is None or verdict.remaining < tightest[1].remaining:
                tightest = (quota, verdict)
        return self._admit(applied, tightest)

    def _check_one(
        self,
        request: Request,
        entry: Entry,
        identity: Identity | None,
        tier: str | None,
        route: str,
    ) -> Decision:
        """One policy on the route (the common case): no lists, headers built in place."""
        quota = self._quota(entry, request, tier)
        if quota is None:
            return ALLOW
        key = request.client.ip if entry.by_ip else entry.key(request, identity, route)
        # In memory (the only case here) every limiter is a MemoryLimiter: a typed call, which
        # compiled code dispatches through the class instead of looking the method up by name.
        verdict = cast(MemoryLimiter, quota.limiter).hit(key)
        if not verdict.allowed:
            return self._refuse([quota.item], quota, verdict, entry, identity)
        if self._ietf and not self._legacy:
            reset = verdict.reset_after
            seconds = math.ceil(reset - 1e-9) if reset > 0 else 0
            # The same (remaining, reset) pairs repeat: their decision is built once per quota
            # (an Allow is immutable), which also lets the engine reuse the encoded lines.
            remaining = verdict.remaining
            code = remaining << 32 | seconds if seconds < _SECONDS_CAP else -1
            allows = quota.allows
            allow = allows.get(code)
            if allow is None:
                if len(allows) >= _MEMO_LIMIT:
                    allows.clear()
                allow = Allow(
                    (
                        ("ratelimit-policy", quota.item),
                        ("ratelimit", f"{quota.label}r={remaining};t={seconds}"),
                    )
                )
                if code >= 0:
                    allows[code] = allow
            return allow
        return self._admit([quota.item], (quota, verdict))

    async def _check_shared(
        self, request: Request, plan: tuple[Entry, ...], identity: Identity | None, route: str
    ) -> Decision:
        tier = identity.tier if identity is not None else None
        applied: list[str] = []
        tightest: tuple[Quota, Verdict] | None = None
        for entry in plan:
            quota = self._quota(entry, request, tier)
            if quota is None:
                continue
            limiter = cast(AsyncLimiter, quota.limiter)
            try:
                verdict = await limiter.hit(entry.key(request, identity, route))
            except BackendUnavailable:
                return BACKEND_DOWN
            applied.append(quota.item)
            if not verdict.allowed:
                return self._refuse(applied, quota, verdict, entry, identity)
            if tightest is None or verdict.remaining < tightest[1].remaining:
                tightest = (quota, verdict)
        return self._admit(applied, tightest)

    @staticmethod
    def _quota(entry: Entry, request: Request, tier: str | None) -> Quota | None:
        if entry.methods and request.method not in entry.methods:
            return None
        return entry.quota(tier)

    def _admit(self, applied: list[str], tightest: tuple[Quota, Verdict] | None) -> Decision:
        if tightest is None or not (self._ietf or self._legacy):
            return ALLOW
        quota, verdict = tightest
        policies = applied[0] if len(applied) == 1 else ", ".join(applied)
        return Allow(
            headers=allowed_headers(
                policies, quota.name, verdict, ietf=self._ietf, legacy=self._legacy
            )
        )

    def _refuse(
        self,
        applied: list[str],
        quota: Quota,
        verdict: Verdict,
        entry: Entry,
        identity: Identity | None,
    ) -> Deny:
        fields: dict[str, object] = {
            "policy": quota.name,
            "limit": verdict.limit,
            "retry_after": round(verdict.retry_after, 3),
        }
        if identity is not None:
            fields["consumer"] = identity.consumer
            if identity.tier is not None:
                fields["tier"] = identity.tier
        return exceeded(
            ", ".join(applied),
            quota.name,
            verdict,
            ietf=self._ietf,
            legacy=self._legacy,
            fields=fields,
        )


_HOLDS_SLOT: StateKey[str] = StateKey("concurrency_slot")


class ConcurrencyGuard:
    """The ``concurrency`` guard: at most ``max_in_flight`` requests at once per consumer (per
    client IP when anonymous), counted in this gateway process. The slot is freed when the
    response is complete, whatever happened to it."""

    name: ClassVar[str] = "concurrency"
    phase: ClassVar[Phase] = Phase.RATE_LIMIT
    requires_body: ClassVar[bool] = False

    def __init__(self, limiter: ConcurrencyLimiter, max_in_flight: int) -> None:
        self.fail_open = False
        self._limiter = limiter
        self._max = max_in_flight
        self._policy = f'"concurrency";q={max_in_flight};qu="concurrent-requests"'

    def check(self, request: Request) -> Decision:
        identity = request.state.get(IDENTITY)
        key = "c:" + identity.consumer if identity is not None else "ip:" + request.client.ip
        if self._limiter.acquire(key):
            request.state[_HOLDS_SLOT] = key
            return ALLOW
        return Deny(
            429,
            "ratelimit.concurrency",
            "Too Many Requests",
            f"At most {self._max} requests may be in flight at once; retry after 1 second.",
            headers=(
                ("retry-after", "1"),
                ("ratelimit-policy", self._policy),
                ("ratelimit", '"concurrency";r=0;t=1'),
            ),
            fields={"policy": "concurrency", "limit": self._max},
            extensions={"violated-policies": ["concurrency"]},
        )

    def on_complete(self, request: Request, status: int, bytes_sent: int, seconds: float) -> None:
        key = request.state.get(_HOLDS_SLOT)
        if key is not None:
            self._limiter.release(key)
