"""Policies compiled into per-route plans: which limiters a request of a route hits, keyed how.

A policy names a rate, the parts of the request it is counted per (client IP, consumer, API key,
route, method; none at all is a global limit), the routes and methods it covers, and rates per
consumer tier. A route may give a policy its own rate there (``routes[].rate_limits``) or exempt
itself (``off``). Plans are built once per route and cached, so a request only walks a short list.

Counters are namespaced by policy (and tier, and route override), so a policy keyed by IP counts an
IP across every route it covers, while ``key: [ip, route]`` counts each route apart.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bastion.config.models import BastionConfig
from bastion.config.ratelimit import KeyPart, PolicyConfig, parse_rate
from bastion.pipeline.decisions import Allow
from bastion.pipeline.identity import Identity
from bastion.pipeline.request import Request
from bastion.pipeline.routing import Route
from bastion.ratelimit.core import Algorithm, AsyncLimiter, Limiter, Rate
from bastion.ratelimit.headers import policy_item

AnyLimiter = Limiter | AsyncLimiter
LimiterFactory = Callable[[str, Algorithm, Rate], AnyLimiter]
"""Makes the limiter of one counter namespace (``per-ip``, ``per-consumer#gold``, ...)."""

KeyFunction = Callable[[Request, Identity | None, str], str]

_SEPARATOR = "\x1f"


def _ip(request: Request, identity: Identity | None, route: str) -> str:
    return request.client.ip


def _consumer(request: Request, identity: Identity | None, route: str) -> str:
    if identity is None:
        return "ip:" + request.client.ip
    return "c:" + identity.consumer


def _api_key(request: Request, identity: Identity | None, route: str) -> str:
    if identity is None or identity.key_id is None:
        return _consumer(request, identity, route)
    return "k:" + identity.key_id


def _route(request: Request, identity: Identity | None, route: str) -> str:
    return route


def _method(request: Request, identity: Identity | None, route: str) -> str:
    return request.method


def _global(request: Request, identity: Identity | None, route: str) -> str:
    return "*"


_PARTS: dict[KeyPart, KeyFunction] = {
    "ip": _ip,
    "consumer": _consumer,
    "api_key": _api_key,
    "route": _route,
    "method": _method,
}


def key_function(parts: Sequence[KeyPart]) -> KeyFunction:
    """The partition key of a request; single-part keys (the common case) skip the join."""
    if not parts:
        return _global
    if len(parts) == 1:
        return _PARTS[parts[0]]
    functions = tuple(_PARTS[part] for part in parts)

    def combined(request: Request, identity: Identity | None, route: str) -> str:
        return _SEPARATOR.join(f(request, identity, route) for f in functions)

    return combined


@dataclass(frozen=True, slots=True)
class Quota:
    """One limiter as a client sees it: the policy name and its ``RateLimit-Policy`` item."""

    name: str
    limiter: AnyLimiter
    item: str
    label: str
    """The ``RateLimit`` member's head, ``"per-ip";``, built once."""
    allows: dict[int, Allow] = field(default_factory=dict, compare=False, hash=False)
    """The admitting decisions already built, by ``remaining << 32 | reset seconds`` (see
    :meth:`RateLimitGuard._check_one`): the same few values repeat from request to request."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One policy on one route: its key, its methods, and its quota per consumer tier."""

    name: str
    key: KeyFunction
    methods: frozenset[str]
    default: Quota | None
    tiers: dict[str, Quota | None]
    by_ip: bool = False
    """Counted per client IP alone (the common case): the key is ``request.client.ip``."""

    def quota(self, tier: str | None) -> Quota | None:
        """The quota of a consumer of ``tier`` (``None``: no limit for that tier)."""
        if tier is None or not self.tiers:
            return self.default
        return self.tiers.get(tier, self.default)


class PlanBook:
    """Every route's plan, built on first use from the policies and the routes' overrides."""

    def __init__(self, config: BastionConfig, factory: LimiterFactory) -> None:
        self._policies = config.rate_limit.policies
        self._overrides = {route.name: route.rate_limits for route in config.routes}
        self._factory = factory
        self._limiters: dict[str, AnyLimiter] = {}
        self._plans: dict[str, tuple[Entry, ...]] = {}

    @property
    def empty(self) -> bool:
        return not self._policies

    def limiters(self) -> dict[str, AnyLimiter]:
        """Every limiter made so far, by counter namespace."""
        return dict(self._limiters)

    def plan(self, route: Route | None) -> tuple[Entry, ...]:
        name = route.name if route is not None else ""
        plan = self._plans.get(name)
        if plan is None:
            plan = self._plans[name] = self._build(name)
        return plan

    def _build(self, route: str) -> tuple[Entry, ...]:
        overrides = self._overrides.get(route, {})
        entries: list[Entry] = []
        for policy in self._policies:
            if policy.routes and route not in policy.routes:
                continue
            override = overrides.get(policy.name)
            if override == "off":
                continue
            entries.append(self._entry(policy, route, override))
        return tuple(entries)

    def _entry(self, policy: PolicyConfig, route: str, override: str | None) -> Entry:
        key = key_function(policy.key)
        methods = frozenset(policy.methods)
        if override is not None:
            rate = parse_rate(override, policy.burst)
            quota = self._quota(policy, f"{policy.name}@{route}", rate)
            return Entry(policy.name, key, methods, quota, {}, policy.key == ("ip",))
        default = self._quota(policy, policy.name, policy.parsed_rate())
        tiers = {
            tier: self._quota(policy, f"{policy.name}#{tier}", policy.parsed_rate(tier))
            for tier in policy.tiers
        }
        return Entry(policy.name, key, methods, default, tiers, policy.key == ("ip",))

    def _quota(self, policy: PolicyConfig, namespace: str, rate: Rate | None) -> Quota | None:
        if rate is None:
            return None
        limiter = self._limiters.get(namespace)
        if limiter is None:
            limiter = self._limiters[namespace] = self._factory(namespace, policy.algorithm, rate)
        return Quota(policy.name, limiter, policy_item(policy.name, rate), f'"{policy.name}";')
