"""The rate-limit guards a configuration enables, with their storage.

Memory storage (the default) keeps counters in this process: exact for one process, and with
``workers: N`` each worker counts on its own, so a limit admits up to N times its rate in total
(the kernel spreads connections over workers). Use ``storage: redis`` for limits that are exact
across workers and instances.
"""

from __future__ import annotations

from bastion.config.models import BastionConfig
from bastion.observability.events import EventSink
from bastion.pipeline.guard import Guard
from bastion.ratelimit.core import Algorithm, Clock, LockoutPolicy, Rate, monotonic
from bastion.ratelimit.guard import ConcurrencyGuard, RateLimitGuard
from bastion.ratelimit.login import LoginGuard
from bastion.ratelimit.policy import AnyLimiter, LimiterFactory, PlanBook
from bastion.ratelimit.storage.memory import ConcurrencyLimiter, MemoryLockout, memory_limiter


def lockout_policy(config: BastionConfig) -> LockoutPolicy:
    login = config.rate_limit.login
    return LockoutPolicy(login.max_failures, login.window, login.lockout, login.max_lockout)


def memory_factory(config: BastionConfig, clock: Clock) -> LimiterFactory:
    max_keys = config.rate_limit.max_keys

    def make(namespace: str, algorithm: Algorithm, rate: Rate) -> AnyLimiter:
        return memory_limiter(algorithm, rate, clock=clock, max_keys=max_keys)

    return make


def ratelimit_guards(
    config: BastionConfig, events: EventSink, *, clock: Clock = monotonic
) -> list[Guard]:
    """``rate_limit`` when policies exist, ``login_limit`` unless disabled, ``concurrency`` when
    ``max_in_flight`` is set."""
    settings = config.rate_limit
    guards: list[Guard] = []
    if settings.policies:
        book = PlanBook(config, memory_factory(config, clock))
        guards.append(
            RateLimitGuard(
                book, shared=False, ietf=settings.headers, legacy=settings.legacy_headers
            )
        )
    if settings.login.enabled:
        login_routes = frozenset(route.name for route in config.routes if route.login)
        lockout = MemoryLockout(lockout_policy(config), clock=clock, max_keys=settings.max_keys)
        guards.append(LoginGuard(settings.login, login_routes, lockout, events, shared=False))
    if settings.concurrency.max_in_flight is not None:
        limit = settings.concurrency.max_in_flight
        guards.append(ConcurrencyGuard(ConcurrencyLimiter(limit, settings.max_keys), limit))
    return guards
