"""Helpers for the auth tests: a fake clock and a real gateway with the auth guards and
bastion's own endpoints (the token endpoint and the JWKS, when signing is configured)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from bastion.auth.apikey import ApiKeyGuard
from bastion.auth.assembly import auth_endpoints, auth_guards
from bastion.auth.bearer import BearerTokenGuard
from bastion.auth.jwt.keystore import SigningKeyStore
from bastion.auth.keys.hashing import KeyHasher
from bastion.auth.keys.sync import Opener
from bastion.config.loader import build_config
from bastion.config.models import BastionConfig
from bastion.config.types import HostPort
from bastion.engine.server import GatewayServer
from bastion.observability.events import MemorySink, SecurityEvent
from bastion.pipeline.chain import GuardChain
from bastion.pipeline.guard import Guard
from bastion.pipeline.routing import Route, Router
from bastion.store.records import KeyStore
from tests.engine.helpers import FAST_TIMEOUTS

PEPPER = b"test-pepper-" + b"p" * 32
START = 1_800_000_000.0
DAY = 86400.0


@dataclass
class FakeClock:
    now: float = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def auth_config(upstream_url: str, **sections: Any) -> BastionConfig:
    """A gateway config with one route ``api`` (or ``routes=``) and the given sections."""
    data: dict[str, Any] = {
        "routes": [{"name": "api", "upstream": upstream_url}],
        "timeouts": FAST_TIMEOUTS,
        "admin": {"enabled": False},
        "events": {"sink": "none"},
    }
    data.update(sections)
    return build_config(data, "test")


@dataclass
class AuthGateway:
    server: GatewayServer
    guards: list[Guard]
    events: MemorySink
    base: str = ""
    closed: list[bool] = field(default_factory=list)
    chain: GuardChain | None = None

    @property
    def api_key(self) -> ApiKeyGuard:
        return next(g for g in self.guards if isinstance(g, ApiKeyGuard))

    @property
    def bearer(self) -> BearerTokenGuard:
        return next(g for g in self.guards if isinstance(g, BearerTokenGuard))

    def refresh(self) -> None:
        """What the background sync does every interval, done now."""
        self.api_key.sync.refresh()

    async def close(self) -> None:
        await self.server.shutdown(1.0)
        if self.chain is not None:
            await self.chain.close()
        else:
            await self.api_key.close()

    def actions(self) -> list[str]:
        return self.events.actions()

    def last(self, action: str) -> SecurityEvent:
        return [e for e in self.events.events if e.action == action][-1]

    def ecs_text(self) -> str:
        """Every event as the JSON that would be written."""
        return "\n".join(orjson.dumps(e.to_ecs()).decode() for e in self.events.events)


async def start_auth_gateway(
    config: BastionConfig,
    store: KeyStore,
    hasher: KeyHasher,
    clock: FakeClock,
    extra_routes: Sequence[Route] = (),
    opener: Opener | None = None,
    signing_store: SigningKeyStore | None = None,
    extra_guards: Sequence[Guard] = (),
) -> AuthGateway:
    """The engine with the router, bastion's auth endpoints and the auth guards over ``store``
    (or what ``opener`` opens), on ``clock``; the key sync runs only when
    :meth:`AuthGateway.refresh` says so. The chain is started (token guards load their keys)."""
    events = MemorySink()
    guards = auth_guards(
        config,
        events,
        clock=clock,
        key_store=opener or (lambda: (store, hasher)),
        start=False,
        signing_store=signing_store,
    )
    own = auth_endpoints(config, guards, events, clock=clock)
    routes = [*extra_routes, *own, *(Route.from_config(r) for r in config.routes)]
    chain = GuardChain([Router(routes), *guards, *extra_guards], events)
    await chain.start()
    server = GatewayServer(config=config, chain=chain, listen=HostPort("127.0.0.1", 0))
    await server.start()
    return AuthGateway(server, guards, events, f"http://127.0.0.1:{server.port}", chain=chain)
