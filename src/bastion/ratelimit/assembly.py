"""The rate-limit guards a configuration enables, with their storage.

Memory storage (the default) keeps counters in this process: exact for one process, and with
``workers: N`` each worker counts on its own, so a limit admits up to N times its rate in total
(the kernel spreads connections over workers). Use ``storage: redis`` for limits that are exact
across workers and instances.
"""

from __future__ import annotations

import asyncio
from typing import cast

from bastion.backends.redis import RedisClient
from bastion.config.models import BastionConfig
from bastion.errors import BackendUnavailable
from bastion.observability.events import EventSink
from bastion.pipeline.guard import Guard
from bastion.ratelimit.core import (
    Algorithm,
    AsyncLockout,
    Clock,
    Limiter,
    Lockout,
    LockoutPolicy,
    Rate,
    monotonic,
)
from bastion.ratelimit.guard import ConcurrencyGuard, RateLimitGuard
from bastion.ratelimit.login import LoginGuard
from bastion.ratelimit.policy import AnyLimiter, LimiterFactory, PlanBook
from bastion.ratelimit.storage.failover import BackendHealth, FailoverLimiter, FailoverLockout
from bastion.ratelimit.storage.memory import ConcurrencyLimiter, MemoryLockout, memory_limiter
from bastion.ratelimit.storage.redis import RedisLimiter, RedisLockout


def lockout_policy(config: BastionConfig) -> LockoutPolicy:
    login = config.rate_limit.login
    return LockoutPolicy(login.max_failures, login.window, login.lockout, login.max_lockout)


def memory_factory(config: BastionConfig, clock: Clock) -> LimiterFactory:
    max_keys = config.rate_limit.max_keys

    def make(namespace: str, algorithm: Algorithm, rate: Rate) -> AnyLimiter:
        return memory_limiter(algorithm, rate, clock=clock, max_keys=max_keys)

    return make


class SharedStorage:
    """The Redis connection every rate-limit guard of one process shares, and its health.

    Started once in the serving event loop (guards call :meth:`start`, which is idempotent); an
    unreachable Redis at start is not fatal: the client keeps trying in the background and the
    failure policy (``on_backend_failure``) decides meanwhile.
    """

    def __init__(self, config: BastionConfig, events: EventSink, clock: Clock | None) -> None:
        self.client = RedisClient.from_config(config.redis)
        self.health = BackendHealth(events, policy=config.rate_limit.on_backend_failure)
        self.health.watch(self.client)
        self.key_prefix = config.redis.key_prefix
        self.clock = clock
        self._started: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._started is None:
            self._started = asyncio.get_running_loop().create_task(self._connect())
        await asyncio.shield(self._started)

    async def _connect(self) -> None:
        try:
            await self.client.connect()
        except BackendUnavailable as exc:
            self.health.failed(exc)

    async def close(self) -> None:
        await self.client.close()

    def factory(self, config: BastionConfig, local: LimiterFactory) -> LimiterFactory:
        def make(namespace: str, algorithm: Algorithm, rate: Rate) -> AnyLimiter:
            limiter = RedisLimiter(
                self.client,
                algorithm,
                rate,
                namespace=namespace,
                key_prefix=self.key_prefix,
                clock=self.clock,
            )
            fallback = local(namespace, algorithm, rate) if self.health.policy == "local" else None
            return FailoverLimiter(limiter, self.health, fallback=cast(Limiter | None, fallback))

        return make

    def lockout(self, policy: LockoutPolicy, local: Lockout) -> AsyncLockout:
        shared = RedisLockout(
            self.client, policy, namespace="login", key_prefix=self.key_prefix, clock=self.clock
        )
        fallback = local if self.health.policy == "local" else None
        return FailoverLockout(shared, self.health, fallback=fallback)


def ratelimit_guards(
    config: BastionConfig,
    events: EventSink,
    *,
    clock: Clock = monotonic,
    shared_clock: Clock | None = None,
) -> list[Guard]:
    """``rate_limit`` when policies exist, ``login_limit`` unless disabled, ``concurrency`` when
    ``max_in_flight`` is set. ``shared_clock`` replaces Redis' own clock (tests only)."""
    settings = config.rate_limit
    guards: list[Guard] = []
    storage = SharedStorage(config, events, shared_clock) if settings.storage == "redis" else None
    local = memory_factory(config, clock)
    if settings.policies:
        book = PlanBook(config, storage.factory(config, local) if storage else local)
        guards.append(
            RateLimitGuard(
                book,
                shared=storage is not None,
                ietf=settings.headers,
                legacy=settings.legacy_headers,
                storage=storage,
            )
        )
    if settings.login.enabled:
        login_routes = frozenset(route.name for route in config.routes if route.login)
        policy = lockout_policy(config)
        memory = MemoryLockout(policy, clock=clock, max_keys=settings.max_keys)
        lockout: Lockout | AsyncLockout = storage.lockout(policy, memory) if storage else memory
        guards.append(
            LoginGuard(
                settings.login,
                login_routes,
                lockout,
                events,
                shared=storage is not None,
                storage=storage,
            )
        )
    if settings.concurrency.max_in_flight is not None:
        limit = settings.concurrency.max_in_flight
        guards.append(ConcurrencyGuard(ConcurrencyLimiter(limit, settings.max_keys), limit))
    return guards
