"""What every connection of one listener shares: config values unpacked once, counters, the pool.

Connections read plain attributes from here on the hot path instead of walking pydantic models.
Deadlines are checked by one periodic sweep (:class:`Reaper`) rather than a timer per request: a
connection only stores the loop time at which it expires, which costs one float per phase.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Final, Protocol

from bastion.config.models import BastionConfig
from bastion.config.types import UpstreamURL
from bastion.engine.headers import REQUEST_REWRITTEN, RESPONSE_REWRITTEN, response_name_table
from bastion.observability.traffic import TrafficStats
from bastion.pipeline.chain import GuardChain
from bastion.pipeline.forwarding import ForwardingPolicy, request_id_source
from bastion.pipeline.response_body import provides_rewrites
from bastion.pipeline.routing import Route, Router

CLIENT_CERT_FIELDS: Final = frozenset(
    {
        b"client-cert",
        b"client-cert-chain",
        b"ssl-client-cert",
        b"x-ssl-client-cert",
        b"x-client-cert",
        b"x-client-verify",
        b"x-ssl-client-verify",
        b"x-ssl-client-dn",
        b"x-ssl-client-s-dn",
        b"x-forwarded-client-cert",
    }
)

if TYPE_CHECKING:
    from bastion.engine.pool import UpstreamPool
    from bastion.engine.protocol import ClientProtocol
    from bastion.observability.ecs import AccessLog


_ID_TAILS: Final = [b"%02x\r\n" % low for low in range(256)]


def _catch_all(router: Router | None) -> Route | None:
    """The one route of a router that has a single route for every host and path, if any."""
    if router is None or len(router.routes) != 1:
        return None
    route = router.routes[0]
    if route.host is not None or route.path_prefix != "/" or route.upstream is None:
        return None
    return route


class Expiring(Protocol):
    deadline: float

    def on_deadline(self) -> None: ...


class Reaper:
    """Sweeps registered members every ``tick`` seconds and calls those past their deadline."""

    def __init__(self, loop: asyncio.AbstractEventLoop, tick: float) -> None:
        self.loop = loop
        self.tick = tick
        self.members: set[Expiring] = set()
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        if self._handle is None:
            self._handle = self.loop.call_later(self.tick, self._sweep)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _sweep(self) -> None:
        now = self.loop.time()
        for member in [m for m in self.members if 0 < m.deadline <= now]:
            member.deadline = 0.0
            member.on_deadline()
        self._handle = self.loop.call_later(self.tick, self._sweep)


class EngineContext:
    """Per-listener shared state; built once by :class:`bastion.engine.server.GatewayServer`."""

    def __init__(
        self,
        *,
        config: BastionConfig,
        chain: GuardChain,
        stats: TrafficStats,
        loop: asyncio.AbstractEventLoop,
        scheme: str,
        access: AccessLog | None = None,
    ) -> None:
        self.config = config
        self.access = access  # called with an AccessRecord per finished exchange
        self.chain = chain
        self.stats = stats
        self.loop = loop
        self.scheme = scheme
        self.policy = ForwardingPolicy(config.proxy.trusted_proxies)
        limits, timeouts = config.limits, config.timeouts
        self.max_request_line = limits.max_request_line
        self.max_header_bytes = limits.max_header_bytes
        self.max_headers = limits.max_headers
        self.max_body = limits.max_body_bytes
        self.max_pipelined = limits.max_pipelined
        self.max_upstream_header_bytes = limits.max_upstream_header_bytes
        self.header_read = timeouts.header_read
        self.body_read = timeouts.body_read
        self.idle = timeouts.idle
        self.upstream_connect = timeouts.upstream_connect
        self.upstream_response = timeouts.upstream_response
        self.upstream_read = timeouts.upstream_read
        self.request_id_header = config.proxy.request_id_header.encode("ascii")
        self.request_id_name = config.proxy.request_id_header
        id_base, self.request_numbers = request_id_source()
        # A new request id's whole field is this prefix, the counter in 8 hex digits, CRLF.
        self.request_id_prefix = self.request_id_header + b": " + id_base.encode("ascii")
        # The field for counter n is _id_head (prefix and every hex digit of n but the last two)
        # plus _ID_TAILS[n & 255]: the head changes once per 256 ids, so no formatting per request.
        self._id_high = -1
        self._id_head = b""
        self.trusts_anyone = self.policy.trusts_anyone
        self.request_skip = REQUEST_REWRITTEN | {self.request_id_header}
        self.response_skip = RESPONSE_REWRITTEN | {self.request_id_header}
        # Over TLS: bastion's HSTS field on every response (an upstream's own is replaced), and
        # client-certificate fields from clients never reach an upstream (only bastion saw the
        # handshake, so only bastion can vouch for a certificate).
        self.hsts = b""
        if scheme == "https":
            hsts = config.tls.hsts
            if hsts.enabled:
                value = hsts.header_value().encode("ascii")
                self.hsts = b"strict-transport-security: " + value + b"\r\n"
            self.response_skip = self.response_skip | {b"strict-transport-security"}
            self.request_skip = self.request_skip | CLIENT_CERT_FIELDS
        # Response field names -> (lower case, rewritten or withheld), for UpstreamConnection.
        self.response_names = response_name_table(self.response_skip)
        self.mask_errors = config.responses.mask_upstream_errors
        server = config.responses.server_header
        self.server_header = b"server: " + server.encode("latin-1") + b"\r\n" if server else b""
        self.router_only: Router | None = None
        # The route of every request when the chain is a router with one catch-all route.
        self.fixed_route: Route | None = None
        self.response_hooks = False
        self.complete_hooks = False
        self.body_rewrites = False
        self.use_chain(chain)
        shortest = min(
            timeouts.header_read,
            timeouts.body_read,
            timeouts.idle,
            timeouts.upstream_response,
            timeouts.upstream_read,
            config.pool.idle_timeout,
        )
        self.reaper = Reaper(loop, min(0.5, max(0.01, shortest / 5)))
        self.connections: set[ClientProtocol] = set()
        self.draining = False
        self.drained: asyncio.Event | None = None  # set once draining and the last one closed
        self.authorities: dict[int, bytes] = {}  # id() of a route's UpstreamURL -> Host value
        self.pool: UpstreamPool | None = None  # set by the server (shared by its connections)

    def use_chain(self, chain: GuardChain) -> None:
        """Decide new requests with ``chain`` (a config reload): exchanges already started keep
        the chain they started with (``Exchange.chain``). Hook flags only ever widen, so an
        exchange of the previous chain still gets its response and completion hooks."""
        self.chain = chain
        only = chain.guards[0] if len(chain.guards) == 1 else None
        self.router_only = only if isinstance(only, Router) else None
        self.fixed_route = _catch_all(self.router_only)
        self.response_hooks = self.response_hooks or any(
            callable(getattr(g, "on_response", None)) for g in chain.guards
        )
        # The chain's exchange observer is fed by dispatch itself; the other hooks, through it.
        self.complete_hooks = self.complete_hooks or chain.unobserved_hooks > 0
        self.body_rewrites = self.body_rewrites or provides_rewrites(chain.guards)

    def new_request_id_field(self) -> bytes:
        """The whole ``x-request-id: ...\r\n`` field of a new id: the same id as
        ``request_id_prefix + b"%08x\r\n" % next(request_numbers)``, without formatting."""
        number = next(self.request_numbers)
        high = number >> 8
        if high != self._id_high:
            self._id_high = high
            self._id_head = self.request_id_prefix + b"%06x" % high
        return self._id_head + _ID_TAILS[number & 255]

    def authority(self, upstream: UpstreamURL) -> bytes:
        """The Host value for ``upstream``, cached (routes and their URLs live as long as we do)."""
        value = self.authorities[id(upstream)] = upstream.authority.encode("latin-1")
        return value
