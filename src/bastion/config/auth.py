"""Configuration of practice 1, authentication: API keys, tokens (``auth.tokens``, the models of
:mod:`bastion.auth.jwt.settings`), where credentials may be, what each route requires (scopes and
object-level rules), and what the upstream learns about the caller (docs/authentication.md,
docs/tokens.md)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bastion.auth.jwt.settings import TokenSettings
from bastion.config.types import Duration

_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9a-z-]{1,64}$")
SCOPE = re.compile(r"^[A-Za-z0-9_.:/*-]{1,64}$")
"""A scope name: no spaces (scopes travel space-separated, RFC 6749 §3.3), no quotes."""
_QUERY_NAME = re.compile(r"^[A-Za-z0-9_.\[\]-]{1,64}$")
_METHOD = re.compile(r"^[A-Z]{1,16}$")
_REALM = re.compile(r'^[^"\\\x00-\x1f\x7f]{1,64}$')
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,31}$")
_PARAM = re.compile(r"^[A-Za-z0-9_.\[\]-]{1,64}$")
_TEMPLATE_PARAM = re.compile(r"\{([A-Za-z0-9_.-]{1,64})\}")
_CLAIM = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$")
_DAY = 86400.0

Requirement = Literal["required", "optional", "public"]
DefaultRequirement = Literal["auto", "required", "optional", "public"]

DEFAULT_QUERY_CREDENTIAL_NAMES: tuple[str, ...] = (
    "api_key",
    "apikey",
    "access_token",
    "token",
    "key",
    "id_token",
    "refresh_token",
    "client_secret",
    "jwt",
    "authorization",
)

# Header names the gateway owns (framing, routing, forwarding): never identity or key headers.
_RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "expect",
        "cookie",
        "authorization",
        "proxy-authorization",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "forwarded",
        "x-request-id",
    }
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _header(value: str) -> str:
    value = value.strip().lower()
    if not _HEADER_NAME.match(value):
        raise ValueError("expected an HTTP header name such as x-api-key")
    if value in _RESERVED_HEADERS:
        raise ValueError(f"expected a header of your own; {value} is one the gateway handles")
    return value


def check_scopes(scopes: tuple[str, ...]) -> tuple[str, ...]:
    for scope in scopes:
        if not SCOPE.match(scope):
            raise ValueError(
                f"scope {scope!r} is not valid; expected scope names of letters, digits and"
                " '_.:/*-' (no spaces), such as orders:read"
            )
    return scopes


class ApiKeysConfig(_Model):
    """API keys: where a client sends one, how long one lives, how fresh gateways keep them."""

    enabled: bool = True
    header: str = Field("x-api-key", description="the request header that carries a key")
    authorization_scheme: str | None = Field(
        "ApiKey", description="also accept 'Authorization: <scheme> <key>'; null: never"
    )
    default_expiry: Duration = Field(90 * _DAY, gt=0, description="lifetime of a new key")
    max_expiry: Duration = Field(365 * _DAY, gt=0, description="longest lifetime a key may get")
    expiry_warning: Duration = Field(
        14 * _DAY, ge=0, description="a key this close to expiry logs auth.key_expiring"
    )
    refresh_interval: Duration = Field(
        0.5, ge=0.05, le=60, description="how often a gateway checks the store for changes"
    )
    pepper_file: Path | None = Field(
        None, description="the hashing pepper (default: state_dir/api-key-pepper)"
    )

    @field_validator("header")
    @classmethod
    def _header_name(cls, value: str) -> str:
        return _header(value)

    @field_validator("authorization_scheme")
    @classmethod
    def _scheme(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _SCHEME.match(value) or value.lower() in ("bearer", "basic", "digest"):
            raise ValueError(
                "expected an auth scheme name of your own such as ApiKey (not Bearer or Basic)"
            )
        return value

    @model_validator(mode="after")
    def _expiries(self) -> Self:
        if self.default_expiry > self.max_expiry:
            raise ValueError(
                f"api_keys.default_expiry ({self.default_expiry:g}s) exceeds api_keys.max_expiry"
                f" ({self.max_expiry:g}s); expected default_expiry <= max_expiry"
            )
        return self


class IdentityHeadersConfig(_Model):
    """Request headers that tell the upstream who called. Inbound copies are always removed;
    ``null`` sends nothing under that field (inbound copies of the default name are still
    removed)."""

    consumer: str | None = "x-bastion-consumer"
    key_id: str | None = "x-bastion-key-id"
    scopes: str | None = "x-bastion-scopes"
    tier: str | None = "x-bastion-tier"
    method: str | None = "x-bastion-auth-method"

    @field_validator("consumer", "key_id", "scopes", "tier", "method")
    @classmethod
    def _names(cls, value: str | None) -> str | None:
        return None if value is None else _header(value)

    @model_validator(mode="after")
    def _unique(self) -> Self:
        names = [n for n in self.sent().values()]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate is not None:
            raise ValueError(f"identity header {duplicate} is used twice; expected unique names")
        return self

    def sent(self) -> dict[str, str]:
        """Field -> header name, for the headers that are sent."""
        fields = ("consumer", "key_id", "scopes", "tier", "method")
        return {f: getattr(self, f) for f in fields if getattr(self, f) is not None}

    def stripped(self) -> frozenset[str]:
        """Every name whose inbound copies are removed: the configured and the default ones."""
        defaults = IdentityHeadersConfig.model_fields
        names = {str(field.default) for field in defaults.values()}
        return frozenset(names | set(self.sent().values()))


class ObjectRuleConfig(_Model):
    """An object-level rule (OWASP API1, broken object-level authorization): a value the request
    names must equal a claim of the caller, so that one caller cannot reach another's objects by
    changing an id.

    ``in: path`` reads the parameter ``name`` of ``template`` (``/users/{user_id}``, matched as a
    prefix of whole segments); ``in: query`` every value of the query parameter ``name``;
    ``in: body`` the JSON body's member at the JSON pointer ``name`` (``/owner/id``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    source: Literal["path", "query", "body"] = Field(
        alias="in", description="where the value is: path, query or body"
    )
    name: str = Field(description="path or query parameter name, or a JSON pointer (body)")
    template: str | None = Field(None, description="in: path, the path template: /users/{id}")
    claim: str = Field("sub", description="the caller's claim the value must equal")
    when_missing: Literal["deny", "allow"] = Field(
        "deny", description="a request without the value: deny (403) or allow"
    )

    @field_validator("claim")
    @classmethod
    def _claim(cls, value: str) -> str:
        if not _CLAIM.match(value):
            raise ValueError("expected a claim name such as sub, client_id or tenant")
        return value

    @model_validator(mode="after")
    def _where(self) -> Self:
        if self.source == "path":
            template = self.template
            if template is None or not template.startswith("/"):
                raise ValueError("in: path needs template, a path such as /users/{user_id}")
            if "?" in template or "#" in template or "//" in template:
                raise ValueError("template: expected a path without query, fragment or '//'")
            params = _TEMPLATE_PARAM.findall(template)
            if self.name not in params:
                raise ValueError(
                    f"name {self.name!r} is not a parameter of template {template}; expected"
                    f" one of: {', '.join(params) or 'none (write it as {name})'}"
                )
            if len(params) != len(set(params)):
                raise ValueError(f"template {template} names a parameter twice")
        elif self.template is not None:
            raise ValueError("template is only for in: path")
        elif self.source == "query" and not _PARAM.match(self.name):
            raise ValueError("expected a query parameter name of letters, digits and '_.-[]'")
        elif self.source == "body" and (not self.name.startswith("/") or len(self.name) > 256):
            raise ValueError("in: body expects name to be a JSON pointer such as /owner/id")
        return self


class RouteAuthConfig(_Model):
    """What one route requires of its callers (unset: ``auth.default``)."""

    require: Requirement | None = Field(
        None, description="required | optional | public; unset: auth.default"
    )
    scopes: tuple[str, ...] = Field((), description="scopes every caller must hold (all of them)")
    method_scopes: dict[str, tuple[str, ...]] = Field(
        default_factory=dict, description="METHOD -> further scopes for that method"
    )
    objects: tuple[ObjectRuleConfig, ...] = Field(
        (), description="object-level rules: request values that must equal a caller's claim"
    )
    bypass_scopes: tuple[str, ...] = Field(
        (), description="callers holding any of these scopes skip the object rules (admins)"
    )

    @field_validator("scopes", "bypass_scopes")
    @classmethod
    def _scopes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return check_scopes(value)

    @field_validator("method_scopes")
    @classmethod
    def _method_scopes(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for method, scopes in value.items():
            if not _METHOD.match(method):
                raise ValueError(f"got method {method!r}; expected an upper-case method like POST")
            check_scopes(scopes)
        return value

    @model_validator(mode="after")
    def _scopes_need_auth(self) -> Self:
        if (self.scopes or self.method_scopes) and self.require in ("public", "optional"):
            raise ValueError(
                f"require is {self.require!r} but scopes are set; expected require: required"
                " (a scope can only be checked on an authenticated caller)"
            )
        if self.objects and self.require in ("public", "optional"):
            raise ValueError(
                f"require is {self.require!r} but objects are set; expected require: required"
                " (an object rule compares a value with a claim of an authenticated caller)"
            )
        if self.bypass_scopes and not self.objects:
            raise ValueError("bypass_scopes is set without objects; expected object rules")
        return self

    @property
    def has_scopes(self) -> bool:
        return bool(self.scopes or self.method_scopes)

    @property
    def needs_identity(self) -> bool:
        """Scopes or object rules: only an authenticated caller can pass."""
        return bool(self.scopes or self.method_scopes or self.objects)


class AuthConfig(_Model):
    """Authentication for every route; each route may override with ``routes[].auth``."""

    enabled: bool = Field(
        True,
        description="false: no authentication guard at all (not even the query-string check);"
        " for gateways whose auth happens elsewhere, logged at start",
    )
    default: DefaultRequirement = Field(
        "auto",
        description="what a route without auth.require needs: auto (required once any"
        " credential exists), required, optional or public",
    )
    realm: str = Field("bastion", description="realm of the WWW-Authenticate challenges")
    forward_credentials: bool = Field(
        False, description="pass the verified Authorization / API-key header to the upstream"
    )
    query_credential_names: tuple[str, ...] = Field(
        DEFAULT_QUERY_CREDENTIAL_NAMES,
        description="query parameters refused as credentials (case, '-', '_' ignored)",
    )
    api_keys: ApiKeysConfig = ApiKeysConfig()
    tokens: TokenSettings = TokenSettings()
    identity_headers: IdentityHeadersConfig = IdentityHeadersConfig()
    openapi_security: bool = Field(
        True,
        description="with openapi set, take each operation's requirement and scopes from the"
        " document's security sections (routes[].auth still overrides)",
    )

    @field_validator("realm")
    @classmethod
    def _realm(cls, value: str) -> str:
        if not _REALM.match(value):
            raise ValueError("expected up to 64 printable characters without quotes")
        return value

    @field_validator("query_credential_names")
    @classmethod
    def _query_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not _QUERY_NAME.match(name):
                raise ValueError(
                    f"got parameter name {name!r}; expected letters, digits and '_.-[]'"
                )
        return value

    @model_validator(mode="after")
    def _headers_apart(self) -> Self:
        key_header = self.api_keys.header
        if key_header in self.identity_headers.stripped():
            raise ValueError(
                f"api_keys.header {key_header} is also an identity header; expected a"
                " different name (identity headers are stripped from every request)"
            )
        tokens = self.tokens
        if tokens.signing is not None and tokens.endpoint.enabled and not self.api_keys.enabled:
            raise ValueError(
                "auth.tokens.signing serves the token endpoint, whose clients authenticate with"
                " an API key, but auth.api_keys.enabled is false; expected api_keys enabled, or"
                " auth.tokens.endpoint.enabled: false"
            )
        return self
