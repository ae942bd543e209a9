"""Configuration of practice 4, encryption in transit: the TLS listener, HSTS, plain HTTP, client
certificates (mTLS), TLS to upstreams and field-level encryption.

TLS is served when ``tls.certificates`` lists certificates or ``tls.enabled`` is true; enabled
without certificates serves the development certificate of the local CA in ``state_dir``.
Weaker choices (upstream verification off, HSTS off) must be spelled out and are logged at start.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bastion.config.types import Duration, HostPort, ListenAddress

_CONSUMER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$")
_POINTER = re.compile(r"^(/([^/~]|~[01])*)+$")
_KID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_DEV_NAMES = ("localhost", "127.0.0.1", "::1")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CertificateFiles(_Model):
    """One served certificate: PEM files, the chain leaf first. The host names it serves (SNI)
    are read from its subject alternative names; the first certificate is the default."""

    cert: Path = Field(description="PEM certificate chain, leaf first")
    key: Path = Field(description="PEM private key (unencrypted), readable by bastion only")


class HSTSConfig(_Model):
    """``Strict-Transport-Security`` on every response over TLS, errors included."""

    enabled: bool = True
    max_age: int = Field(31_536_000, ge=0, description="seconds; one year by default")
    include_subdomains: bool = True
    preload: bool = Field(False, description="ask browsers' preload lists to include the domain")

    @model_validator(mode="after")
    def _preload_rules(self) -> Self:
        if self.preload and (self.max_age < 31_536_000 or not self.include_subdomains):
            raise ValueError(
                "hsts.preload needs max_age of at least 31536000 and include_subdomains: true"
                " (the preload lists refuse anything less)"
            )
        return self

    def header_value(self) -> str:
        value = f"max-age={self.max_age}"
        if self.include_subdomains:
            value += "; includeSubDomains"
        if self.preload:
            value += "; preload"
        return value


class PlainHTTPConfig(_Model):
    """An optional plain-HTTP listener beside the TLS one; it never forwards anything.

    ``refuse`` answers every request with a problem telling the client to use HTTPS; ``redirect``
    answers 308 to the same host and path over HTTPS. Under both, a request carrying credentials
    is refused and logged: the credential crossed the network in clear and must be rotated.
    """

    listen: ListenAddress | None = Field(None, description="e.g. 0.0.0.0:80; no listener if unset")
    policy: Literal["refuse", "redirect"] = "refuse"
    https_port: int | None = Field(
        None, ge=1, le=65535, description="port in redirects; default the TLS listener's"
    )


class CertificateConsumer(_Model):
    """Maps client certificates to a consumer: by subject common name or by any SAN value."""

    consumer: str
    subject_cn: str | None = None
    san: str | None = Field(None, description="a DNS name, URI, e-mail or IP in the SAN")
    tier: str | None = None
    scopes: tuple[str, ...] = ()

    @field_validator("consumer")
    @classmethod
    def _consumer(cls, value: str) -> str:
        if not _CONSUMER.match(value):
            raise ValueError("expected a consumer id of letters, digits and _ . : @ -")
        return value

    @model_validator(mode="after")
    def _one_match(self) -> Self:
        if (self.subject_cn is None) == (self.san is None):
            raise ValueError("expected exactly one of subject_cn and san")
        return self


class ClientAuthConfig(_Model):
    """Client certificates (mTLS), verified against ``ca`` during the handshake.

    ``required`` refuses a handshake without a valid certificate; ``optional`` asks for one and
    refuses only an invalid one (requests without one go on as anonymous, for the route's
    requirement to decide). A verified certificate becomes an identity through ``consumers``;
    one that no rule maps is refused (``unmapped: deny``) or named by its subject common name
    (``unmapped: subject``).
    """

    mode: Literal["none", "optional", "required"] = "none"
    ca: tuple[Path, ...] = Field((), description="PEM files of the CAs that issue client certs")
    consumers: tuple[CertificateConsumer, ...] = ()
    unmapped: Literal["deny", "subject"] = "deny"

    @model_validator(mode="after")
    def _needs_ca(self) -> Self:
        if self.mode != "none" and not self.ca:
            raise ValueError(f"client_auth.mode {self.mode} needs client_auth.ca (PEM files)")
        return self


class UpstreamTLSConfig(_Model):
    """How bastion connects to ``https://`` upstreams."""

    verify: bool = Field(True, description="verify the certificate and host name (keep on)")
    ca: Path | None = Field(None, description="PEM CA bundle; default the system trust store")
    client_cert: Path | None = Field(None, description="PEM certificate presented to upstreams")
    client_key: Path | None = None
    pins: tuple[str, ...] = Field((), description="base64 SHA-256 SPKI pins; one must match")
    server_name: str | None = Field(None, description="name to verify; default the URL's host")

    @field_validator("pins")
    @classmethod
    def _pins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = []
        for pin in value:
            text = pin.strip().removeprefix("sha256/")
            try:
                raw = base64.b64decode(text, validate=True)
            except ValueError:
                raw = b""
            if len(raw) != 32:
                raise ValueError("expected base64 SHA-256 SPKI pins (44 characters, from tls pins)")
            cleaned.append(text)
        return tuple(cleaned)

    @model_validator(mode="after")
    def _pair(self) -> Self:
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("client_cert and client_key go together")
        return self


_DEFAULT_METHODS = {
    "request": ("POST", "PUT", "PATCH"),
    "response": ("GET",),
    "both": ("GET", "POST", "PUT", "PATCH"),
}


class FieldRule(_Model):
    """JSON values of ``route`` encrypted in request bodies before the upstream sees them
    (``direction: request``), decrypted in response bodies on the way back to the client
    (``response``), or both."""

    route: str
    pointers: tuple[str, ...] = Field(description="RFC 6901 JSON pointers, e.g. /card/number")
    direction: Literal["request", "response", "both"] = "request"
    methods: tuple[str, ...] | None = Field(
        None,
        description="upper-case methods; default POST, PUT, PATCH (request), GET (response)",
    )

    @property
    def applies_to(self) -> tuple[str, ...]:
        """The methods the rule applies to (``methods``, or the direction's default)."""
        return self.methods if self.methods is not None else _DEFAULT_METHODS[self.direction]

    @property
    def encrypts_requests(self) -> bool:
        return self.direction != "response"

    @property
    def decrypts_responses(self) -> bool:
        return self.direction != "request"

    @field_validator("pointers")
    @classmethod
    def _pointers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("expected at least one JSON pointer")
        for pointer in value:
            if not _POINTER.match(pointer):
                raise ValueError(f"{pointer!r} is not a JSON pointer; expected e.g. /card/number")
        return value


class FieldEncryptionConfig(_Model):
    """Field-level encryption (JWE compact, ``dir`` + ``A256GCM``, key ids and rotation)."""

    keys_file: Path | None = Field(
        None, description="key ring (JSON, 0600); default state_dir/field-keys.json"
    )
    rules: tuple[FieldRule, ...] = ()
    kid: str | None = Field(None, description="key id to encrypt with; default the ring's primary")

    @field_validator("kid")
    @classmethod
    def _kid(cls, value: str | None) -> str | None:
        if value is not None and not _KID.match(value):
            raise ValueError("expected a key id of letters, digits, '_', '.' or '-'")
        return value


class TLSConfig(_Model):
    """The TLS listener and everything else that concerns encryption in transit."""

    enabled: bool = Field(False, description="serve TLS; on by itself when certificates are set")
    profile: Literal["intermediate", "modern"] = Field(
        "intermediate", description="Mozilla profile: 1.2+1.3 ECDHE AEAD, or 1.3 only"
    )
    certificates: tuple[CertificateFiles, ...] = ()
    dev_names: tuple[str, ...] = Field(
        _DEV_NAMES, description="names in the development certificate (no certificates set)"
    )
    reload_interval: Duration = Field(
        5.0, ge=0, description="how often certificate files are checked for change; 0: never"
    )
    expiry_warning: Duration = Field(
        30 * 86400.0, ge=0, description="warn when a certificate expires sooner than this"
    )
    hsts: HSTSConfig = HSTSConfig()
    plain_http: PlainHTTPConfig = PlainHTTPConfig()
    client_auth: ClientAuthConfig = ClientAuthConfig()
    upstream: UpstreamTLSConfig = UpstreamTLSConfig()
    upstream_routes: dict[str, UpstreamTLSConfig] = Field(
        default_factory=dict, description="route name -> upstream TLS settings for that route"
    )
    field_encryption: FieldEncryptionConfig = FieldEncryptionConfig()

    @model_validator(mode="before")
    @classmethod
    def _enabled_by_certificates(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("certificates") and "enabled" not in data:
            return {**data, "enabled": True}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.certificates and not self.enabled:
            raise ValueError("tls.enabled is false but tls.certificates are set")
        if self.client_auth.mode != "none" and not self.enabled:
            raise ValueError("tls.client_auth needs TLS on the listener (tls.enabled)")
        if self.plain_http.listen is not None and not self.enabled:
            raise ValueError("tls.plain_http.listen needs TLS on the main listener (tls.enabled)")
        return self


def check_tls_references(tls: TLSConfig, routes: set[str], listen: HostPort) -> None:
    """Cross-field rules against the rest of the config (routes, listeners)."""
    known = ", ".join(sorted(routes)) or "none"
    for name in tls.upstream_routes:
        if routes and name not in routes:
            raise ValueError(f"tls.upstream_routes names unknown route {name!r}; expected: {known}")
    for rule in tls.field_encryption.rules:
        if routes and rule.route not in routes:
            raise ValueError(
                f"tls.field_encryption.rules names unknown route {rule.route!r}; expected: {known}"
            )
    if tls.plain_http.listen is not None and tls.plain_http.listen == listen:
        raise ValueError("tls.plain_http.listen equals listen; expected its own port")
