"""Builds the guard chains and event sinks a configuration describes, for every face of bastion.

The gateway engine, the ASGI middleware and the admin listener all get their chains from here,
so that one config means the same guards wherever it is used.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from bastion.auth.assembly import auth_endpoints, auth_guards
from bastion.config.models import BastionConfig
from bastion.observability.events import EventSink, NullSink
from bastion.observability.writer import JsonLinesWriter
from bastion.pipeline.chain import GuardChain
from bastion.pipeline.guard import Guard
from bastion.pipeline.routing import Route, Router
from bastion.ratelimit.assembly import ratelimit_guards
from bastion.tls.assembly import tls_guards
from bastion.validation.injection import injection_guards


def build_events(config: BastionConfig) -> EventSink:
    """The sink security events go to (``events.sink``); a writer thread does the I/O."""
    events = config.events
    if events.sink == "none":
        return NullSink()
    if events.sink == "file":
        assert events.path is not None  # checked by EventsConfig
        events.path.parent.mkdir(parents=True, exist_ok=True)
        return JsonLinesWriter(open(events.path, "ab"), capacity=events.buffer)
    stream = sys.stdout if events.sink == "stdout" else sys.stderr
    return JsonLinesWriter(stream.buffer, capacity=events.buffer)


def config_routes(config: BastionConfig) -> list[Route]:
    return [Route.from_config(route) for route in config.routes]


def build_guards(config: BastionConfig, events: EventSink) -> list[Guard]:
    """The practice guards the config enables (authentication, limits, validation, ...)."""
    return [
        *auth_guards(config, events),
        *ratelimit_guards(config, events),
        *tls_guards(config, events),
        *injection_guards(config, events),
    ]


def build_gateway_chain(
    config: BastionConfig, events: EventSink, endpoints: Sequence[Route] = ()
) -> GuardChain:
    """The chain of the public listener: the router (config routes plus bastion's own
    endpoints, such as the token endpoint) followed by the guards the config enables."""
    guards = build_guards(config, events)
    # bastion's own endpoints (POST /oauth/token, the JWKS) are built on the auth guards' keys.
    own = auth_endpoints(config, guards, events)
    router = Router([*endpoints, *own, *config_routes(config)])
    return GuardChain([router, *guards], events)


def build_middleware_chain(config: BastionConfig, events: EventSink) -> GuardChain:
    """The chain inside an ASGI app: no router (the app is the only destination)."""
    return GuardChain(build_guards(config, events), events)
