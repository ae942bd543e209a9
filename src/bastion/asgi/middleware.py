"""``BastionMiddleware``: the gateway's guard chain in front of any ASGI app, in process.

A plain ASGI class in the manner of Starlette's ``TrustedHostMiddleware``: it turns the scope into
the same request view the gateway engine builds, runs the same :class:`GuardChain` the same config
assembles, and either answers the denial itself (the app never runs) or calls the app with a
wrapped ``send`` that applies the response rules. Nothing here is specific to one framework.
"""

from __future__ import annotations

import asyncio
import logging
import time
from os import PathLike
from pathlib import Path
from typing import Final

from bastion.asgi.responses import HTTPExchange, ResponseFinisher, WebSocketExchange, app_failed
from bastion.asgi.types import ASGIApp, Message, Receive, Scope, Send
from bastion.asgi.view import ScopeReader, first_header, path_refusal
from bastion.assembly import build_events, build_middleware_chain, build_middleware_endpoints
from bastion.config.loader import load_config
from bastion.config.models import BastionConfig
from bastion.errors import describe
from bastion.observability.asgi_access import middleware_access
from bastion.observability.events import EventSink, SecurityEvent
from bastion.observability.traffic import TrafficStats
from bastion.pipeline.chain import GuardChain
from bastion.pipeline.decisions import Deny
from bastion.pipeline.forwarding import ForwardingPolicy
from bastion.pipeline.problem import problem_response
from bastion.pipeline.request import Request
from bastion.pipeline.response import Endpoint, Response
from bastion.pipeline.routing import ROUTE, Route, Router
from bastion.pipeline.upstream_headers import UPSTREAM_HEADERS

logger = logging.getLogger("bastion.asgi")

BODY_TOO_LARGE: Final = Deny(
    413,
    "request.body_too_large",
    "Content Too Large",
    "The request body exceeds the limit.",
    headers=(("connection", "close"),),  # the rest of the body is never read
)

ENDPOINT_FAILED: Final = Deny(500, "gateway.internal_error", "Internal Server Error")

REQUEST_STATE_KEY: Final = "bastion.request"
"""Where the app finds the request view: ``scope["state"]["bastion.request"]``."""


def request_view(scope: Scope) -> Request | None:
    """The request view bastion built for ``scope`` (with what guards found in ``.state``).

    ``None`` when the request did not pass through :class:`BastionMiddleware`. In Starlette or
    FastAPI: ``request_view(request.scope)``.
    """
    state = scope.get("state")
    view = state.get(REQUEST_STATE_KEY) if state else None
    return view if isinstance(view, Request) else None


def _resolve_config(config: BastionConfig | str | PathLike[str] | None) -> BastionConfig:
    if isinstance(config, BastionConfig):
        return config
    if config is None:
        return load_config(None)
    if isinstance(config, str | PathLike):
        return load_config(Path(config))
    raise TypeError(
        f"config is a {type(config).__name__}; expected a BastionConfig, a path to a YAML file,"
        " or None for the defaults"
    )


def _declared_over(length: str, limit: int) -> bool:
    """Whether a declared Content-Length exceeds ``limit``. Leading zeros are dropped before
    ``int()``, which refuses strings of more than 4300 digits: a zero-padded length is valid
    HTTP (llhttp accepts it), and must not become a 500."""
    if not (length.isascii() and length.isdigit()):
        return False  # not a length: the body is read and counted as it comes
    significant = length.lstrip("0")
    return len(significant) > 18 or (bool(significant) and int(significant) > limit)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the already-read ``body`` first, then the real stream
    (which from then on yields only ``http.disconnect``)."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _apply_upstream_headers(scope: Scope, request: Request) -> None:
    """The header edits guards asked for (the caller's identity), applied to what the app sees,
    as the engine applies them to what an upstream receives."""
    edits = request.state.get(UPSTREAM_HEADERS)
    if edits is not None:
        scope["headers"] = edits.apply(scope.get("headers") or ())


class BastionMiddleware:
    """Runs bastion's guard chain before an ASGI app and hardens its responses.

    ``config`` is a :class:`BastionConfig`, a path to a YAML config, or ``None`` for the
    defaults. ``chain`` replaces the chain the config would assemble (embedding, tests); it brings
    its own event sink. ``events`` is the sink for the assembled chain (default: the config's
    ``events`` section). Traffic counters are in :attr:`stats`.
    """

    def __init__(
        self,
        app: ASGIApp,
        config: BastionConfig | str | PathLike[str] | None = None,
        *,
        chain: GuardChain | None = None,
        events: EventSink | None = None,
    ) -> None:
        self.app = app
        self.config = _resolve_config(config)
        self._endpoints: Router | None = None
        if chain is None:
            self.events = events if events is not None else build_events(self.config)
            chain = build_middleware_chain(self.config, self.events)
            self._endpoints = build_middleware_endpoints(self.config, chain)
        elif events is not None and events is not chain.events:
            raise ValueError(
                "events= is the sink of the chain bastion assembles; a chain passed as chain="
                " already has its sink (GuardChain(guards, events))"
            )
        else:
            self.events = chain.events
        self.chain = chain
        self.stats = TrafficStats()
        self.policy = ForwardingPolicy(self.config.proxy.trusted_proxies)
        self.max_body_bytes = self.config.limits.max_body_bytes
        self._reader = ScopeReader(
            self.policy, self.config.proxy.request_id_header.encode("latin-1")
        )
        self._finisher = ResponseFinisher(self.config, chain, self.stats)
        self._finisher.access = middleware_access(self.config, self.events)
        # The chain is immutable: what it needs is settled once, not looked up per request.
        self._guarded = not chain.empty
        self._started = False
        self._starting: asyncio.Task[None] | None = None
        self._requires_body = chain.requires_body
        self._mask = self.config.responses.mask_upstream_errors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _start_chain(self) -> None:
        """Start the guards' connections (Redis) in the app's own event loop, on the first
        request: the middleware is usually built before any loop runs."""
        if self._starting is None:
            self._starting = asyncio.get_running_loop().create_task(self.chain.start())
        await asyncio.shield(self._starting)
        self._started = True

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._started:
            await self._start_chain()
        started_at = time.perf_counter()
        request = self._reader.request(scope)
        exchange = HTTPExchange(self._finisher, request, send, started_at, mask=self._mask)
        self.stats.in_flight += 1
        try:
            refusal = path_refusal(request.path)
            if refusal is not None:
                await self._refuse_malformed(exchange, refusal)
                return
            own = self._own_endpoint(request)
            if self._requires_body or (own is not None and own.requires_body):
                body = await self._read_body(request, receive)
                if isinstance(body, Deny):
                    await self._refuse_malformed(exchange, body)
                    return
                if body is None:
                    exchange.client_left()
                    return
                request.body = body
                receive = _replay(body, receive)
            if self._guarded:
                decision = await self.chain.run(request)
                if isinstance(decision, Deny):
                    await exchange.respond(problem_response(decision, request.request_id))
                    return
                exchange.added = decision.headers
                _apply_upstream_headers(scope, request)
            if own is not None:
                await exchange.respond(await self._call_endpoint(own, request))
                return
            scope.setdefault("state", {})[REQUEST_STATE_KEY] = request
            await self._call_app(scope, receive, exchange)
        finally:
            self.stats.in_flight -= 1
            exchange.finish()

    def _own_endpoint(self, request: Request) -> Endpoint | None:
        """bastion's own endpoint for this request (the token endpoint, the JWKS), if any; its
        route goes into the request state, as the gateway's router puts it there, so route-bound
        guards (the login lockout on ``/oauth/token``) apply in both modes."""
        if self._endpoints is None:
            return None
        route: Route | None = self._endpoints.match(request.host, request.path)
        if route is None or route.endpoint is None:
            return None
        request.state[ROUTE] = route
        return route.endpoint

    @staticmethod
    async def _call_endpoint(endpoint: Endpoint, request: Request) -> Response:
        try:
            return await endpoint(request)
        except Exception as exc:
            # describe(): bastion's own message, or the type alone for a foreign error, whose
            # text (or traceback) could quote the form the client sent, its credential included.
            logger.error(
                "bastion endpoint failed on %s %s (request %s): %s",
                request.method,
                request.path,
                request.request_id,
                describe(exc),
            )
            return problem_response(ENDPOINT_FAILED, request.request_id)

    async def _call_app(self, scope: Scope, receive: Receive, exchange: HTTPExchange) -> None:
        """Call the app; an error before its response starts becomes a 500 problem, one after
        it started is re-raised so the server aborts the connection (a cut-off body must not
        look complete)."""
        request = exchange.request
        try:
            await self.app(scope, receive, exchange.send)
        except Exception:
            if exchange.started:
                raise
            # Method, path and id only: the query and headers may carry credentials.
            logger.error(
                "application failed on %s %s (request %s)",
                request.method,
                request.path,
                request.request_id,
                exc_info=True,
            )
        else:
            if exchange.started:
                return
            logger.error(
                "application returned without a response on %s %s (request %s)",
                request.method,
                request.path,
                request.request_id,
            )
        await exchange.respond(problem_response(app_failed(500), request.request_id))

    async def _read_body(self, request: Request, receive: Receive) -> bytes | Deny | None:
        """The whole body, or the 413 denial past ``limits.max_body_bytes``, or ``None`` when
        the client disconnected. A declared ``Content-Length`` over the limit is refused before
        anything is read."""
        limit = self.max_body_bytes
        declared = first_header(request.headers.raw, b"content-length")
        if declared is not None and _declared_over(declared.strip(), limit):
            return BODY_TOO_LARGE
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "http.disconnect":
                return None
            if kind != "http.request":
                continue
            chunk: bytes = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    return BODY_TOO_LARGE
                chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _record_refusal(self, request: Request, deny: Deny) -> None:
        """A refusal decided before the chain (size cap, unsafe path): counted as a protocol
        error and recorded as one security event, exactly as the gateway engine does."""
        self.stats.protocol_error(deny.code)
        self.events.emit(
            SecurityEvent.for_request(
                request,
                action=deny.code,
                outcome="failure",
                guard="middleware",
                status=deny.status,
                reason=deny.detail,
            )
        )

    async def _refuse_malformed(self, exchange: HTTPExchange, deny: Deny) -> None:
        self._record_refusal(exchange.request, deny)
        await exchange.respond(problem_response(deny, exchange.request.request_id))

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._started:
            await self._start_chain()
        started_at = time.perf_counter()
        request = self._reader.request(scope)
        exchange = WebSocketExchange(self._finisher, request, send, started_at)
        try:
            deny = path_refusal(request.path)
            if deny is not None:
                self._record_refusal(request, deny)
            elif self._guarded:
                decision = await self.chain.run(request)
                if isinstance(decision, Deny):
                    deny = decision
                else:
                    exchange.added = decision.headers
                    _apply_upstream_headers(scope, request)
            if deny is not None:
                # The handshake is answered after the app would have received websocket.connect.
                message = await receive()
                if message["type"] != "websocket.connect":
                    exchange.client_left()
                    return
                extensions = scope.get("extensions") or {}
                await exchange.refuse(deny, denial_response="websocket.http.response" in extensions)
                return
            scope.setdefault("state", {})[REQUEST_STATE_KEY] = request
            await self.app(scope, receive, exchange.send)
        finally:
            exchange.finish()
