"""Configuration of tokens: trusted issuers, bastion's signing keys, the token endpoint, the
verified-token cache.

Frozen pydantic models (``extra="forbid"``), mounted as ``auth.tokens``. Defaults are the secure
choice; a weaker one (plain-HTTP discovery, an HMAC shared secret) has to be spelled out.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from bastion.auth.jwt.jose import ASYMMETRIC, HMAC_ALGORITHMS
from bastion.config.types import ByteSize, Duration

AsymmetricAlgorithm = Literal[
    "EdDSA", "ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"
]
HmacAlgorithm = Literal["HS256", "HS384", "HS512"]
JWSAlgorithm = AsymmetricAlgorithm | HmacAlgorithm
_DEFAULT_ALGORITHMS: tuple[JWSAlgorithm, ...] = ("RS256", "ES256", "EdDSA")
_CLAIM = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$")
_SCOPE = re.compile(r"^[A-Za-z0-9_.:/*-]{1,64}$")
_HMAC_MIN_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _url(value: str, *, allow_http: bool, what: str) -> str:
    parts = urlsplit(value)
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes or not parts.hostname:
        expected = "an https:// URL" + (" (or http://)" if allow_http else "")
        raise ValueError(f"{what}: expected {expected}")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{what}: expected a URL without user:password")
    if parts.query or parts.fragment:
        raise ValueError(f"{what}: expected a URL without query or fragment")
    return value


class IssuerSettings(_Model):
    """One identity provider whose tokens bastion accepts, found by OIDC discovery.

    Tokens are matched to an issuer by their ``iss`` claim and verified only with that issuer's
    keys. ``shared_secret`` (HMAC) replaces discovery for an issuer that signs with HS256/384/512;
    it must be random (at least as long as the hash), never a password.
    """

    issuer: str = Field(description="the exact iss value; discovery at <issuer>/.well-known/...")
    audiences: list[str] = Field(min_length=1, description="aud values naming this API")
    algorithms: list[JWSAlgorithm] = Field(
        default_factory=lambda: list(_DEFAULT_ALGORITHMS),
        min_length=1,
        description="accepted alg values (allowlist)",
    )
    discovery_url: str | None = Field(None, description="default: issuer + well-known path")
    jwks_uri: str | None = Field(None, description="skip discovery and fetch keys here")
    shared_secret: SecretStr | None = Field(None, description="HMAC key (HS* algorithms only)")
    token_type: str | None = Field(None, description="required typ header, e.g. at+jwt")
    required_claims: list[str] = Field(default_factory=lambda: ["sub"])
    leeway: Duration = Field(30.0, ge=0, le=300, description="clock skew allowed on exp/nbf/iat")
    max_token_lifetime: Duration | None = Field(None, gt=0, description="refuse exp - iat above")
    refresh_interval: Duration = Field(3600.0, ge=60, description="background JWKS refresh")
    refetch_cooldown: Duration = Field(30.0, ge=1, description="least time between refetches")
    max_stale: Duration = Field(86400.0, gt=0, description="serve old keys at most this long")
    fetch_timeout: Duration = Field(5.0, gt=0, le=60)
    allow_http: bool = Field(False, description="plain-HTTP discovery/JWKS (tests only)")
    identity_method: Literal["oidc", "jwt"] = Field("oidc", description="Identity.method")

    @field_validator("audiences", "required_claims")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        if any(not item or len(item) > 512 for item in value):
            raise ValueError("expected non-empty strings of at most 512 characters")
        return value

    @field_validator("required_claims")
    @classmethod
    def _claims(cls, value: list[str]) -> list[str]:
        if not all(_CLAIM.match(name) for name in value):
            raise ValueError("expected claim names such as sub or client_id")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _url(self.issuer, allow_http=self.allow_http, what="issuer")
        for name in ("discovery_url", "jwks_uri"):
            value = getattr(self, name)
            if value is not None:
                _url(value, allow_http=self.allow_http, what=name)
        hmac = set(self.algorithms) & HMAC_ALGORITHMS
        if hmac and set(self.algorithms) & ASYMMETRIC:
            raise ValueError("algorithms: HMAC and public-key algorithms cannot share an issuer")
        if hmac:
            if self.shared_secret is None:
                raise ValueError("algorithms: HS* needs shared_secret (never a key from a JWKS)")
            if self.discovery_url or self.jwks_uri:
                raise ValueError("shared_secret issuers take no discovery_url or jwks_uri")
            secret = self.shared_secret.get_secret_value().encode()
            need = max(_HMAC_MIN_BYTES[alg] for alg in hmac)
            if len(secret) < need or len(set(secret)) < 16:
                raise ValueError(
                    f"shared_secret: expected at least {need} random bytes "
                    "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(64))')"
                )
        elif self.shared_secret is not None:
            raise ValueError("shared_secret needs HS256, HS384 or HS512 in algorithms")
        return self


class SigningSettings(_Model):
    """bastion's own signing keys and the access tokens it issues (RFC 9068)."""

    issuer: str = Field(description="iss of tokens bastion issues (its public base URL)")
    audiences: list[str] = Field(min_length=1, description="aud of issued tokens; first default")
    algorithm: Literal["EdDSA", "ES256"] = "EdDSA"
    token_lifetime: Duration = Field(300.0, gt=0, description="default access token lifetime")
    max_token_lifetime: Duration = Field(3600.0, gt=0, le=86400, description="hard cap")
    rotation_interval: Duration = Field(7 * 86400.0, ge=3600, description="scheduled rotation")
    publish_ahead: Duration = Field(600.0, ge=0, description="next key published before use")
    leeway: Duration = Field(30.0, ge=0, le=300)
    key_dir: str = Field("signing-keys", description="directory under state_dir (0700)")
    resync_interval: Duration = Field(
        0.5, ge=0.05, le=60, description="how often an instance checks the store for rotations"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _url(self.issuer, allow_http=True, what="issuer")
        if self.token_lifetime > self.max_token_lifetime:
            raise ValueError("token_lifetime must not exceed max_token_lifetime")
        if self.publish_ahead >= self.rotation_interval:
            raise ValueError("publish_ahead must be shorter than rotation_interval")
        key_dir = PurePosixPath(self.key_dir)
        if key_dir.is_absolute() or ".." in key_dir.parts or not key_dir.parts:
            raise ValueError("key_dir: expected a relative directory under state_dir")
        return self


class TokenEndpointSettings(_Model):
    """``POST /oauth/token`` (client credentials, RFC 6749 §4.4) and ``GET
    /.well-known/jwks.json``: served when ``signing`` is set, unless ``enabled`` is false."""

    enabled: bool = Field(True, description="serve the token and JWKS endpoints")
    required_scope: str | None = Field(
        None, description="only API keys holding this scope may exchange for tokens"
    )

    @field_validator("required_scope")
    @classmethod
    def _scope(cls, value: str | None) -> str | None:
        if value is not None and not _SCOPE.match(value):
            raise ValueError("expected a scope name such as tokens:issue (no spaces)")
        return value


class TokenCacheSettings(_Model):
    """The verified-token cache: signatures are checked once per token, not per request."""

    max_entries: int = Field(10_000, ge=0, le=10_000_000, description="0 disables the cache")


class TokenLimitSettings(_Model):
    """Caps checked before any decoding or signature work."""

    max_token_size: ByteSize = Field(8192, ge=256, le=65536)
    max_header_size: ByteSize = Field(1024, ge=128, le=8192)
    max_json_depth: int = Field(8, ge=2, le=32)


class TokenSettings(_Model):
    """Everything about JWTs: issuers trusted, bastion's own signing and token endpoint, cache
    and limits."""

    issuers: list[IssuerSettings] = Field(default_factory=list)
    signing: SigningSettings | None = None
    endpoint: TokenEndpointSettings = Field(default_factory=TokenEndpointSettings)
    cache: TokenCacheSettings = Field(default_factory=TokenCacheSettings)
    limits: TokenLimitSettings = Field(default_factory=TokenLimitSettings)

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        names = [issuer.issuer for issuer in self.issuers]
        if self.signing is not None:
            names.append(self.signing.issuer)
        if len(names) != len(set(names)):
            raise ValueError("issuers: each iss value may appear once (signing.issuer included)")
        return self
