"""Configuration of the injection guard (practice 3): SQL injection, XSS and shell command
injection in the path, the query, named headers and every string of a body.

Off by default: the guard makes every request's body buffered, and a detector that refuses
legitimate traffic must be switched on knowingly (``monitor`` first, then ``block``). Exemptions
name a field as ``IN`` or ``IN:NAME`` (see :func:`parse_field`), so that a rich-text field can
carry HTML without the whole route losing its SQL and command checks.
"""

from __future__ import annotations

import re
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Kind = Literal["sql", "xss", "command"]
Mode = Literal["off", "monitor", "block"]
Location = Literal["path", "query", "header", "body"]

KINDS: tuple[Kind, ...] = ("sql", "xss", "command")
LOCATIONS: tuple[Location, ...] = ("path", "query", "header", "body")

_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9a-z-]+$")
_POINTER = re.compile(r"^(/([^/~]|~[01])*)*$")
_ROUTE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_METHOD = re.compile(r"^[A-Z]{1,16}$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def parse_field(text: str) -> tuple[Location, str | None]:
    """A field string as (location, name): ``"body:/a/*/html"`` -> ``("body", "/a/*/html")``.

    ``path`` and ``path:/N`` (the N-th path segment, from 0); ``query:NAME``; ``header:NAME``;
    ``body`` and ``body:POINTER`` (a JSON pointer into a JSON body, or ``/NAME`` for a form
    field; ``*`` stands for any one key or index). Without a name, the whole location.
    """
    where, sep, name = text.partition(":")
    if where not in LOCATIONS:
        raise ValueError(
            f"{text!r}: expected path, query, header or body, optionally followed by ':' and a"
            " name (query:q, header:user-agent, body:/comment, path:/2)"
        )
    if not sep:
        return where, None
    if where in ("body", "path"):
        if not name or not _POINTER.match(name):
            raise ValueError(f"{text!r}: expected a JSON pointer after '{where}:' (such as /a/0)")
        if where == "path" and not re.fullmatch(r"/\d{1,4}", name):
            raise ValueError(f"{text!r}: expected path:/N, N the segment number from 0")
    elif where == "header":
        name = name.strip().lower()
        if not _HEADER_NAME.match(name):
            raise ValueError(f"{text!r}: expected an HTTP header name after 'header:'")
    elif not name:
        raise ValueError(f"{text!r}: expected a parameter name after 'query:'")
    return where, name


class ExemptionConfig(_Model):
    """A field the guard does not inspect, for all kinds or only some (``xss`` in an HTML field).

    Written as a mapping, or as the bare field string (all kinds).
    """

    field: str = Field(description="path, path:/N, query:NAME, header:NAME, body, body:POINTER")
    kinds: tuple[Kind, ...] = Field(KINDS, description="what is not looked for there")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        return {"field": data} if isinstance(data, str) else data

    @field_validator("field")
    @classmethod
    def _field(cls, value: str) -> str:
        parse_field(value)
        return value

    @field_validator("kinds")
    @classmethod
    def _kinds(cls, value: tuple[Kind, ...]) -> tuple[Kind, ...]:
        if not value:
            raise ValueError("expected at least one of sql, xss, command")
        return value


class InjectionRuleConfig(_Model):
    """Settings for some requests: those of one route (``route``, gateway routes by name) or
    under one path prefix (``path_prefix``, which also works in the middleware), optionally only
    for some methods. The first matching rule applies."""

    route: str | None = Field(None, description="a route name from routes")
    path_prefix: str | None = Field(None, description="requests whose path starts with it")
    methods: tuple[str, ...] = Field((), description="upper-case methods; empty: every method")
    mode: Mode | None = Field(None, description="this rule's mode; injection.mode when unset")
    exempt: tuple[ExemptionConfig, ...] = Field((), description="fields not inspected here")

    @field_validator("route")
    @classmethod
    def _route(cls, value: str | None) -> str | None:
        if value is not None and not _ROUTE_NAME.match(value):
            raise ValueError("expected a route name (lower-case letters, digits, '-', '_', '.')")
        return value

    @field_validator("path_prefix")
    @classmethod
    def _prefix(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError("expected a path starting with '/'")
        return value

    @field_validator("methods")
    @classmethod
    def _methods(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for method in value:
            if not _METHOD.match(method):
                raise ValueError(f"{method!r}: expected an upper-case method such as POST")
        return value

    @model_validator(mode="after")
    def _one_selector(self) -> Self:
        if (self.route is None) == (self.path_prefix is None):
            raise ValueError("expected exactly one of route and path_prefix")
        return self


class InjectionConfig(_Model):
    """The ``injection`` guard: what it looks for, where, and what it does when it finds it."""

    mode: Mode = Field(
        "off", description="off; monitor (let through, record an event); block (400)"
    )
    detect: tuple[Kind, ...] = Field(KINDS, description="sql, xss, command")
    inspect: tuple[Location, ...] = Field(
        LOCATIONS, description="where to look: path, query, header (the named ones), body"
    )
    headers: tuple[str, ...] = Field(
        (), description="request headers to inspect (lower-case names); none by default"
    )
    max_values: int = Field(
        10_000,
        ge=1,
        description="strings inspected per request at most; a request with more is refused",
    )
    exempt: tuple[ExemptionConfig, ...] = Field((), description="fields never inspected")
    rules: tuple[InjectionRuleConfig, ...] = Field(
        (), description="per route or path prefix: mode and exemptions"
    )

    @field_validator("detect")
    @classmethod
    def _detect(cls, value: tuple[Kind, ...]) -> tuple[Kind, ...]:
        if not value:
            raise ValueError("expected at least one of sql, xss, command (or mode: off)")
        return tuple(dict.fromkeys(value))

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        names = tuple(name.strip().lower() for name in value)
        for name in names:
            if not _HEADER_NAME.match(name):
                raise ValueError(f"{name!r}: expected an HTTP header name such as user-agent")
        return names

    @property
    def active(self) -> bool:
        """True when some request can be inspected (the guard is built only then)."""
        return self.mode != "off" or any(r.mode not in (None, "off") for r in self.rules)


def check_injection_references(config: InjectionConfig, routes: set[str]) -> None:
    """Rules name routes that exist (when the config has routes at all)."""
    for index, rule in enumerate(config.rules):
        if rule.route is not None and routes and rule.route not in routes:
            raise ValueError(
                f"injection.rules[{index}].route {rule.route!r} is not a route; expected one of:"
                f" {', '.join(sorted(routes))}"
            )
