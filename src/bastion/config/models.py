"""The typed configuration: one frozen pydantic model per concern, validated once at start.

Every field has a safe default so that ``bastion serve --upstream URL`` needs no file at all.
The YAML file mirrors these models one to one (see docs/configuration.md).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bastion.config.admin import AdminConfig
from bastion.config.auth import AuthConfig, RouteAuthConfig
from bastion.config.backends import PostgresConfig, RedisConfig
from bastion.config.events import EventsConfig
from bastion.config.injection import InjectionConfig
from bastion.config.monitoring import MonitoringConfig
from bastion.config.ratelimit import (
    RateLimitConfig,
    check_rate,
    check_route_override,
    parse_rate,
)
from bastion.config.tls import TLSConfig, check_tls_references
from bastion.config.types import (
    ByteSize,
    Duration,
    HostPort,
    ListenAddress,
    TrustedNetwork,
    UpstreamTarget,
)
from bastion.config.validation import ValidationConfig, check_validation_references

_ROUTE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9a-z-]+$")


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeoutsConfig(Model):
    """Every phase of an exchange has a deadline; a slow client or upstream is cut off."""

    header_read: Duration = Field(10.0, gt=0, description="whole request head, from first byte")
    body_read: Duration = Field(30.0, gt=0, description="longest pause between body chunks")
    upstream_connect: Duration = Field(5.0, gt=0)
    upstream_response: Duration = Field(60.0, gt=0, description="until the response head")
    upstream_read: Duration = Field(60.0, gt=0, description="longest pause in a response body")
    idle: Duration = Field(60.0, gt=0, description="keep-alive client with no request")
    shutdown_grace: Duration = Field(30.0, ge=0, description="in-flight requests at SIGTERM")


class LimitsConfig(Model):
    """Sizes past which a request is refused before anything reaches an upstream."""

    max_request_line: ByteSize = Field(8192, ge=64, description="over it: 414")
    max_header_bytes: ByteSize = Field(32768, ge=256, description="all header fields; over: 431")
    max_headers: int = Field(100, ge=1, le=10_000, description="header fields; over it: 431")
    max_body_bytes: ByteSize = Field(
        10 * 1024 * 1024, ge=0, description="a body a guard buffers; over it: 413"
    )
    max_upstream_header_bytes: ByteSize = Field(65536, ge=256)
    max_pipelined: int = Field(16, ge=1, le=1024, description="requests queued per connection")


class PoolConfig(Model):
    """Keep-alive connections to each upstream."""

    max_connections: int = Field(512, ge=1, description="open at once, per upstream")
    max_idle: int = Field(128, ge=0, description="kept idle, per upstream")
    idle_timeout: Duration = Field(30.0, gt=0)


class ProxyConfig(Model):
    """How bastion treats forwarding headers and request ids."""

    trusted_proxies: tuple[TrustedNetwork, ...] = Field(
        (), description="peers whose X-Forwarded-*/Forwarded/X-Request-ID are believed"
    )
    request_id_header: str = "x-request-id"

    @field_validator("request_id_header")
    @classmethod
    def _header_name(cls, value: str) -> str:
        value = value.strip().lower()
        if not _HEADER_NAME.match(value):
            raise ValueError("expected an HTTP header name such as x-request-id")
        return value


class ResponsesConfig(Model):
    mask_upstream_errors: bool = Field(
        True, description="replace upstream 5xx bodies with a problem+json (no stack traces)"
    )
    server_header: str | None = Field(None, description="Server header to send; none by default")


class RouteConfig(Model):
    """Requests whose host and path prefix match go to ``upstream``.

    The most specific route wins: a route naming the host before one that does not, then the
    longest ``path_prefix``.
    """

    name: str
    upstream: UpstreamTarget
    path_prefix: str = "/"
    host: str | None = Field(None, description="exact host, or *.example.com; any when unset")
    strip_prefix: bool = False
    preserve_host: bool = Field(False, description="send the client's Host instead of upstream's")
    auth: RouteAuthConfig = RouteAuthConfig()
    login: bool = Field(False, description="failed answers count toward the login lockout")
    rate_limits: dict[str, str] = Field(
        default_factory=dict, description="policy name -> this route's rate, or 'off'"
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _ROUTE_NAME.match(value):
            raise ValueError("expected a lower-case name of letters, digits, '-', '_' or '.'")
        return value

    @field_validator("rate_limits")
    @classmethod
    def _rate_limits(cls, value: dict[str, str]) -> dict[str, str]:
        for policy, rate in value.items():
            check_route_override(policy, rate)
        return value

    @field_validator("path_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value.startswith("/") or "?" in value or "#" in value:
            raise ValueError("expected a path starting with '/', without query or fragment")
        if any(seg in (".", "..") for seg in value.split("/")):
            raise ValueError("expected a path without '.' or '..' segments")
        return value

    @field_validator("host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().lower()
        bare = value[2:] if value.startswith("*.") else value
        if not bare or not re.fullmatch(r"[a-z0-9.-]+", bare):
            raise ValueError("expected a host name such as api.example.com or *.example.com")
        return value


class BastionConfig(Model):
    """The whole configuration of one gateway (and of the middleware, which ignores listeners)."""

    listen: ListenAddress = HostPort("127.0.0.1", 8080)
    workers: int = Field(1, ge=1, le=256)
    state_dir: Path = Path(".bastion")
    routes: tuple[RouteConfig, ...] = ()
    timeouts: TimeoutsConfig = TimeoutsConfig()
    limits: LimitsConfig = LimitsConfig()
    pool: PoolConfig = PoolConfig()
    proxy: ProxyConfig = ProxyConfig()
    responses: ResponsesConfig = ResponsesConfig()
    admin: AdminConfig = AdminConfig()
    events: EventsConfig = EventsConfig()
    openapi: Path | None = None
    auth: AuthConfig = AuthConfig()
    rate_limit: RateLimitConfig = RateLimitConfig()
    redis: RedisConfig = RedisConfig()
    postgres: PostgresConfig = PostgresConfig()
    tls: TLSConfig = TLSConfig()
    validation: ValidationConfig = ValidationConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    injection: InjectionConfig = InjectionConfig()

    @model_validator(mode="after")
    def _routes_unique(self) -> Self:
        names = [r.name for r in self.routes]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate is not None:
            raise ValueError(f"route name {duplicate!r} is used twice; expected unique names")
        places = [(r.host, r.path_prefix) for r in self.routes]
        clash = next((p for p in places if places.count(p) > 1), None)
        if clash is not None:
            raise ValueError(
                f"two routes match host {clash[0] or '*'} and path_prefix {clash[1]!r};"
                " expected one route per host and prefix"
            )
        if self.admin.enabled and self.admin.listen == self.listen:
            raise ValueError("admin.listen equals listen; expected the admin on its own port")
        return self

    @model_validator(mode="after")
    def _rate_limit_references(self) -> Self:
        routes = {r.name for r in self.routes}
        policies = {p.name for p in self.rate_limit.policies}
        for policy in self.rate_limit.policies:
            unknown = sorted(set(policy.routes) - routes)
            if unknown and self.routes:
                raise ValueError(
                    f"rate_limit.policies[{policy.name}].routes names unknown routes "
                    f"{', '.join(unknown)}; expected one of: {', '.join(sorted(routes))}"
                )
        known = ", ".join(sorted(policies)) or "none (rate_limit.policies is empty)"
        by_name = {p.name: p for p in self.rate_limit.policies}
        for route in self.routes:
            unknown = sorted(set(route.rate_limits) - policies)
            if unknown:
                raise ValueError(
                    f"routes[{route.name}].rate_limits names unknown policies "
                    f"{', '.join(unknown)}; expected one of: {known}"
                )
            for name, text in route.rate_limits.items():
                if text != "off":
                    policy = by_name[name]
                    try:
                        check_rate(policy.algorithm, parse_rate(text, policy.burst), text)
                    except ValueError as exc:
                        raise ValueError(
                            f"routes[{route.name}].rate_limits.{name}: {exc}"
                        ) from None
        if self.rate_limit.storage == "redis" and self.redis.url is None:
            raise ValueError("rate_limit.storage is 'redis' but redis.url is not set")
        return self

    @model_validator(mode="after")
    def _tls_references(self) -> Self:
        check_tls_references(self.tls, {r.name for r in self.routes}, self.listen)
        return self

    @model_validator(mode="after")
    def _validation_references(self) -> Self:
        routes = {r.name for r in self.routes}
        check_validation_references(self.validation, routes, self.openapi is not None)
        return self
