"""The guards practice 4 adds to a chain: client certificates and field encryption."""

from __future__ import annotations

from bastion.config.models import BastionConfig
from bastion.observability.events import EventSink
from bastion.pipeline.guard import Guard
from bastion.tls.field_guard import FieldEncryptionGuard
from bastion.tls.mtls import ClientCertificateGuard


def tls_guards(config: BastionConfig, events: EventSink) -> list[Guard]:
    """``client_certificate`` when ``tls.client_auth.mode`` is not ``none``;
    ``field_encryption`` when ``tls.field_encryption.rules`` are set."""
    guards: list[Guard] = []
    if config.tls.client_auth.mode != "none":
        guards.append(ClientCertificateGuard(config.tls.client_auth))
    if config.tls.field_encryption.rules:
        guards.append(FieldEncryptionGuard(config))
    return guards
