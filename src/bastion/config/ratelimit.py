"""Configuration of practice 2, rate limiting: policies, tiers, the login preset, storage."""

from __future__ import annotations

import re
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bastion.config.types import Duration
from bastion.ratelimit.algorithms import Params
from bastion.ratelimit.core import Algorithm, Rate

KeyPart = Literal["ip", "consumer", "api_key", "route", "method"]
"""What a limit is counted per. ``consumer`` and ``api_key`` fall back to the client IP for
anonymous requests, so an unauthenticated flood is still limited."""

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_METHOD = re.compile(r"^[A-Z]{1,16}$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def parse_rate(value: str, burst: int | None = None) -> Rate:
    try:
        return Rate.parse(value, burst)
    except ValueError as exc:
        raise ValueError(str(exc)) from None


_EXACT_MICROSECONDS = 2**53


def check_rate(algorithm: Algorithm, rate: Rate, text: str) -> None:
    """Refuse at load time what a limiter could not count exactly (in memory or in Redis)."""
    try:
        params = Params(algorithm, rate)
    except ValueError as exc:
        raise ValueError(f"{text!r}: {exc}") from None
    if algorithm == "sliding_window" and rate.limit * params.period >= _EXACT_MICROSECONDS:
        raise ValueError(
            f"{text!r}: sliding_window counts exactly up to limit x period of about 9e9 hits x "
            "seconds; use gcra"
        )


class PolicyConfig(_Model):
    """One limit: ``rate`` per ``key``, on the routes and methods it names (all by default)."""

    name: str = Field(description="shown to clients in RateLimit-Policy; lower case")
    rate: str = Field(description="'100/minute', '10/s', '1000/5m'")
    burst: int | None = Field(None, ge=1, description="gcra: hits at once; default the limit")
    algorithm: Algorithm = "gcra"
    key: tuple[KeyPart, ...] = ("ip",)
    routes: tuple[str, ...] = Field((), description="route names; empty: every route")
    methods: tuple[str, ...] = Field((), description="upper-case methods; empty: every method")
    tiers: dict[str, str] = Field(
        default_factory=dict, description="consumer tier -> rate, or 'unlimited'"
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("expected up to 32 lower-case letters, digits, '-' or '_'")
        return value

    @field_validator("rate")
    @classmethod
    def _rate(cls, value: str) -> str:
        parse_rate(value)
        return value

    @field_validator("key")
    @classmethod
    def _key(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("expected each key part at most once")
        return value

    @field_validator("methods")
    @classmethod
    def _methods(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for method in value:
            if not _METHOD.match(method):
                raise ValueError(f"expected upper-case HTTP methods such as GET, got {method!r}")
        return value

    @field_validator("tiers")
    @classmethod
    def _tiers(cls, value: dict[str, str]) -> dict[str, str]:
        for tier, rate in value.items():
            if not _NAME.match(tier):
                raise ValueError(f"tier {tier!r}: expected a lower-case name")
            if rate != "unlimited":
                parse_rate(rate)
        return value

    @model_validator(mode="after")
    def _rates_countable(self) -> Self:
        for text in (self.rate, *(r for r in self.tiers.values() if r != "unlimited")):
            check_rate(self.algorithm, parse_rate(text, self.burst), text)
        return self

    def parsed_rate(self, tier: str | None = None) -> Rate | None:
        """The rate for a consumer of ``tier`` (``None``: unlimited)."""
        text = self.tiers.get(tier, self.rate) if tier is not None else self.rate
        if text == "unlimited":
            return None
        return parse_rate(text, self.burst)


class LoginConfig(_Model):
    """Failed-attempt limits with lockout on login and token endpoints (credential stuffing)."""

    enabled: bool = True
    paths: tuple[str, ...] = Field(("/oauth/token",), description="exact paths treated as login")
    max_failures: int = Field(5, ge=1, le=10_000, description="failures per window before lockout")
    window: Duration = Field(900.0, gt=0)
    lockout: Duration = Field(60.0, gt=0, description="first lockout; doubles each time")
    max_lockout: Duration = Field(3600.0, gt=0)
    failure_statuses: tuple[int, ...] = Field((401, 403), description="answers that are failures")
    account_header: str | None = Field(
        None, description="header naming the account of a login (besides Basic and identity)"
    )

    @field_validator("paths")
    @classmethod
    def _paths(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for path in value:
            if not path.startswith("/") or "?" in path:
                raise ValueError(f"expected paths starting with '/', got {path!r}")
        return value

    @field_validator("failure_statuses")
    @classmethod
    def _statuses(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        for status in value:
            if not 400 <= status <= 599:
                raise ValueError(f"expected 4xx or 5xx statuses, got {status}")
        return value

    @field_validator("account_header")
    @classmethod
    def _header(cls, value: str | None) -> str | None:
        return value.lower() if value is not None else None

    @model_validator(mode="after")
    def _lockouts(self) -> Self:
        if self.lockout > self.max_lockout:
            raise ValueError("login.lockout must not exceed login.max_lockout")
        return self


class ConcurrencyConfig(_Model):
    """In-flight requests per consumer (client IP when anonymous), per gateway instance."""

    max_in_flight: int | None = Field(None, ge=1, description="unset: no concurrency limit")


class RateLimitConfig(_Model):
    """Every limit of the gateway and where its counters live."""

    storage: Literal["memory", "redis"] = "memory"
    on_backend_failure: Literal["closed", "open", "local"] = "closed"
    max_keys: int = Field(100_000, ge=100, description="memory: keys kept per policy")
    headers: bool = Field(True, description="RateLimit-Policy and RateLimit on limited routes")
    legacy_headers: bool = Field(False, description="also X-RateLimit-Limit/-Remaining/-Reset")
    policies: tuple[PolicyConfig, ...] = ()
    login: LoginConfig = LoginConfig()
    concurrency: ConcurrencyConfig = ConcurrencyConfig()

    @model_validator(mode="after")
    def _unique(self) -> Self:
        names = [policy.name for policy in self.policies]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"policy names must be unique, repeated: {', '.join(duplicates)}")
        if "login" in names:
            raise ValueError("policy name 'login' is reserved for the login preset")
        return self


def check_route_override(policy: str, rate: str) -> None:
    """A route's ``rate_limits`` entry: a policy name and its rate there, or ``off``."""
    if not _NAME.match(policy):
        raise ValueError(f"rate_limits: {policy!r} is not a policy name")
    if rate != "off":
        try:
            parse_rate(rate)
        except ValueError as exc:
            raise ValueError(f"rate_limits.{policy}: got {rate!r}; {exc}") from None
