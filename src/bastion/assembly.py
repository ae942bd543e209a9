"""Builds the guard chains and event sinks a configuration describes, for every face of bastion.

The gateway engine, the ASGI middleware and the admin listener all get their chains from here,
so that one config means the same guards wherever it is used.
"""

from __future__ import annotations

from collections.abc import Sequence

from bastion.auth.assembly import auth_endpoints, auth_guards
from bastion.config.models import BastionConfig
from bastion.observability.detect.assembly import monitored_events, monitoring_guards
from bastion.observability.events import EventSink
from bastion.observability.writer import EventWriter
from bastion.pipeline.chain import GuardChain
from bastion.pipeline.guard import Guard
from bastion.pipeline.routing import Route, Router
from bastion.ratelimit.assembly import ratelimit_guards
from bastion.tls.assembly import tls_guards
from bastion.validation.assembly import validation_guards
from bastion.validation.injection import injection_guards


def build_events(config: BastionConfig) -> EventWriter:
    """The sink security and access events go to (``events``): a writer thread formats them
    and feeds every configured sink, and security events to the event store."""
    from bastion.observability.assembly import build_writer

    return build_writer(config)


def config_routes(config: BastionConfig) -> list[Route]:
    return [Route.from_config(route) for route in config.routes]


def build_guards(config: BastionConfig, events: EventSink) -> list[Guard]:
    """The practice guards the config enables (authentication, limits, validation, ...)."""
    return [
        *auth_guards(config, events),
        *ratelimit_guards(config, events),
        *tls_guards(config, events),
        *validation_guards(config, events),
        *monitoring_guards(config, events),
        *injection_guards(config, events),
    ]


def build_gateway_chain(
    config: BastionConfig, events: EventSink, endpoints: Sequence[Route] = ()
) -> GuardChain:
    """The chain of the public listener: the router (config routes plus bastion's own
    endpoints, such as the token endpoint) followed by the guards the config enables. With
    ``monitoring`` on, the chain's events pass through the detectors' tee first."""
    events = monitored_events(config, events)
    guards = build_guards(config, events)
    # bastion's own endpoints (POST /oauth/token, the JWKS) are built on the auth guards' keys.
    own = auth_endpoints(config, guards, events)
    router = Router([*endpoints, *own, *config_routes(config)])
    return GuardChain([router, *guards], events)


def build_middleware_chain(config: BastionConfig, events: EventSink) -> GuardChain:
    """The chain inside an ASGI app: no router (the app is the only destination)."""
    events = monitored_events(config, events)
    return GuardChain(build_guards(config, events), events)


def build_middleware_endpoints(config: BastionConfig, chain: GuardChain) -> Router | None:
    """bastion's own endpoints in middleware mode (``POST /oauth/token``, the JWKS), built on
    the middleware chain's guards; ``None`` when the config serves none. Requests they do not
    match go to the app."""
    own = auth_endpoints(config, chain.guards, chain.events)
    return Router(own) if own else None
