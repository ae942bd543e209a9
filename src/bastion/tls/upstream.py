"""TLS to ``https://`` upstreams: verified by default, an optional client certificate, optional
SPKI pins.

The pool (:mod:`bastion.engine.pool`) asks :class:`UpstreamTLS` for the context of a route's
settings (``tls.upstream``, or ``tls.upstream_routes.NAME``) once, and checks pins on each new
connection (a pooled connection was checked when it opened). A certificate that fails
verification or matches no pin answers the client 502 ``upstream.tls_failed`` and is a
security event: it is what a machine in the middle looks like.
"""

from __future__ import annotations

import logging
import ssl
import time
from typing import Any

from bastion.config.models import BastionConfig
from bastion.config.tls import UpstreamTLSConfig
from bastion.errors import ConfigError, UpstreamConnectError
from bastion.observability.events import EventSink, SecurityEvent
from bastion.tls.certs import spki_pin_of_der
from bastion.tls.profiles import client_context

logger = logging.getLogger("bastion.tls")


class UpstreamTLSError(UpstreamConnectError):
    """The upstream's TLS handshake failed: certificate not verified, pin mismatch, protocol."""

    code = "upstream.tls_failed"
    status = 502


class UpstreamTLS:
    """One set of upstream TLS settings, compiled: the client context and the pins."""

    def __init__(self, config: UpstreamTLSConfig) -> None:
        self.config = config
        self.pins = frozenset(config.pins)
        self.server_name = config.server_name
        try:
            context = client_context(
                verify=config.verify, cafile=str(config.ca) if config.ca is not None else None
            )
        except (OSError, ssl.SSLError):
            raise ConfigError(
                f"tls.upstream.ca: {str(config.ca)!r} is not a readable PEM CA bundle"
            ) from None
        if config.client_cert is not None and config.client_key is not None:
            try:
                context.load_cert_chain(config.client_cert, config.client_key)
            except (OSError, ssl.SSLError):
                raise ConfigError(
                    f"tls.upstream.client_cert: {str(config.client_cert)!r} and"
                    f" {str(config.client_key)!r} are not a readable PEM certificate and its key"
                ) from None
        self.context = context

    def pin_failure(self, transport: Any) -> str | None:
        """Why a new connection's certificate is refused by the pins, or None when it passes."""
        if not self.pins:
            return None
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(True) if ssl_object is not None else None
        if not der:
            return "no certificate to pin"
        pin = spki_pin_of_der(der)
        if pin not in self.pins:
            return f"certificate key {pin} matches no configured pin"
        return None


def describe_tls_error(exc: BaseException) -> str:
    """The reason a handshake failed, in OpenSSL's words (no secret is ever part of it)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return exc.reason or type(exc).__name__
    return type(exc).__name__


def report_failure(
    events: EventSink, route: str, authority: str, reason: str, client_ip: str, request_id: str
) -> UpstreamTLSError:
    """Log and record a failed upstream handshake; the error to answer the client with."""
    logger.warning("tls: upstream %s (route %s) refused: %s", authority, route, reason)
    events.emit(
        SecurityEvent(
            action="upstream.tls_failed",
            outcome="failure",
            timestamp=time.time(),
            guard="upstream",
            request_id=request_id,
            client_ip=client_ip,
            status=502,
            reason=reason,
            fields={"route": route, "upstream": authority},
        )
    )
    return UpstreamTLSError(f"TLS to the upstream failed: {reason}")


def check_upstream_tls(config: BastionConfig) -> None:
    """Build the settings every ``https`` route uses, so that a bad file fails at start
    (raises :class:`ConfigError`)."""
    tls = config.tls
    for route in config.routes:
        if route.upstream.scheme == "https":
            UpstreamTLS(tls.upstream_routes.get(route.name, tls.upstream))
