"""Every check family bastion ships, one module each; :func:`default_registry` collects them.

A family module exposes ``register(registry)``; adding a family is one import and one line here.
Live families run in registration order, so the rate-limit bursts come last: they leave the
operator's credential limited for a while.
"""

from __future__ import annotations

from bastion.audit.checks import (
    attest_auth,
    attest_logging,
    attest_ratelimit,
    attest_transport,
    attest_validation,
    live_auth,
    live_headers,
    live_input,
    live_jwt,
    live_ratelimit,
    live_transport,
    static_auth,
    static_responses,
    static_schema,
    static_transport,
)
from bastion.audit.model import Registry


def default_registry() -> Registry:
    """A fresh registry holding every built-in check (no process-wide state)."""
    registry = Registry()
    static_auth.register(registry)
    static_transport.register(registry)
    static_responses.register(registry)
    static_schema.register(registry)
    live_auth.register(registry)
    live_transport.register(registry)
    live_headers.register(registry)
    live_jwt.register(registry)
    live_input.register(registry)
    live_ratelimit.register(registry)
    attest_auth.register(registry)
    attest_ratelimit.register(registry)
    attest_validation.register(registry)
    attest_transport.register(registry)
    attest_logging.register(registry)
    return registry
