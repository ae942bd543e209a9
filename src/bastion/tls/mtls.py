"""The ``client_certificate`` guard: client certificates (mTLS) as an authentication method.

OpenSSL verified the certificate against ``tls.client_auth.ca`` during the handshake (a
certificate it cannot verify fails the handshake, so one that reaches a guard is verified);
this guard maps it to a consumer. Rules (``tls.client_auth.consumers``) match the subject
common name or any subject alternative name value exactly, first rule first; a verified
certificate no rule maps is refused (401 ``auth.certificate_not_mapped``) or, with
``unmapped: subject``, named by its common name. A certificate whose validity ended while its
connection stayed open is refused as expired.

The guard runs early in the authenticate phase: a header credential checked after it (an API key,
a bearer token) replaces the certificate's identity, since it names the caller more precisely
than the machine's certificate. A request without a certificate is not this guard's business
(the route's requirement decides). Results are cached per certificate, so a request on a
known connection costs one dictionary lookup.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from cryptography import x509

from bastion.config.tls import ClientAuthConfig
from bastion.pipeline.decisions import ALLOW, Allow, Decision, Deny
from bastion.pipeline.guard import Phase
from bastion.pipeline.identity import IDENTITY, Identity
from bastion.pipeline.request import Request
from bastion.pipeline.routing import ROUTE
from bastion.tls.certs import CertificateFacts

METHOD = "mtls"
NOT_MAPPED_DETAIL = "The client certificate is valid but not registered for any consumer."
EXPIRED_DETAIL = "The client certificate has expired; reconnect with a current one."
_CACHE_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class _Known:
    """What a certificate maps to: an identity (with its expiry) or a denial."""

    identity: Identity | None
    not_after: float
    deny: Deny | None
    allows: dict[str | None, Allow]


class ClientCertificateGuard:
    """The ``client_certificate`` guard (see the module docstring)."""

    name: ClassVar[str] = "client_certificate"
    phase: ClassVar[Phase] = Phase.AUTHENTICATE
    requires_body: ClassVar[bool] = False

    def __init__(self, config: ClientAuthConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.fail_open = False
        self.config = config
        self.clock = clock
        self.rules = config.consumers
        self._known: dict[bytes, _Known] = {}
        self._expired = Deny(401, "auth.expired_credentials", "Unauthorized", EXPIRED_DETAIL,
                             fields={"auth_method": METHOD, "reason": "expired"})  # fmt: skip

    def check(self, request: Request) -> Decision:
        tls = request.tls
        if tls is None:
            return ALLOW
        der = tls.client_cert_der
        if der is None:
            return ALLOW
        known = self._known.get(der)
        if known is None:
            known = self._learn(der)
        if known.deny is not None:
            return known.deny
        if self.clock() >= known.not_after:
            return self._expired
        identity = known.identity
        assert identity is not None
        request.state[IDENTITY] = identity
        route = request.state.get(ROUTE)
        name = route.name if route is not None else None
        allow = known.allows.get(name)
        if allow is None:
            fields: dict[str, object] = {
                "consumer": identity.consumer,
                "key_id": identity.key_id,
                "auth_method": METHOD,
            }
            if name is not None:
                fields["route"] = name
            allow = known.allows[name] = Allow(event="auth.success", fields=fields)
        return allow

    def _learn(self, der: bytes) -> _Known:
        if len(self._known) >= _CACHE_LIMIT:
            self._known.clear()
        facts = CertificateFacts.of(x509.load_der_x509_certificate(der))
        known = self._known[der] = self.map(facts)
        return known

    def map(self, facts: CertificateFacts) -> _Known:
        """The identity (or denial) for a verified certificate described by ``facts``."""
        key_id = f"sha256:{facts.fingerprint}"
        claims = {
            "subject": facts.subject,
            "issuer": facts.issuer,
            "serial": format(facts.serial, "x"),
            "san": list(facts.san_values),
        }
        not_after = facts.not_after.timestamp()
        for rule in self.rules:
            if (rule.subject_cn is not None and rule.subject_cn == facts.common_name) or (
                rule.san is not None and rule.san in facts.san_values
            ):
                identity = Identity(
                    consumer=rule.consumer,
                    method=METHOD,
                    key_id=key_id,
                    scopes=frozenset(rule.scopes),
                    tier=rule.tier,
                    claims=claims,
                )
                return _Known(identity, not_after, None, {})
        if self.config.unmapped == "subject" and facts.common_name:
            identity = Identity(
                consumer=facts.common_name, method=METHOD, key_id=key_id, claims=claims
            )
            return _Known(identity, not_after, None, {})
        deny = Deny(
            401,
            "auth.certificate_not_mapped",
            "Unauthorized",
            NOT_MAPPED_DETAIL,
            fields={
                "auth_method": METHOD,
                "key_id": key_id,
                "certificate": {"subject": facts.subject, "issuer": facts.issuer},
            },
        )
        return _Known(None, not_after, deny, {})
