"""The upstream connection pool: idle keep-alive connections and connection counts per upstream.

A connection is handed out again only after a complete exchange (see
:mod:`bastion.engine.upstream`). When ``pool.max_connections`` are open to one upstream, further
exchanges wait for one to free up, in arrival order. TLS to ``https`` upstreams verifies
certificates (the system trust store or ``tls.upstream.ca``), may present a client certificate
and check SPKI pins (:mod:`bastion.tls.upstream`); a route with its own settings
(``tls.upstream_routes``) has its own connections.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Sequence

from bastion.config.models import RouteConfig
from bastion.config.types import UpstreamURL
from bastion.engine import dispatch
from bastion.engine.context import EngineContext
from bastion.engine.exchange import Exchange
from bastion.engine.upstream import PoolKey, UpstreamConnection
from bastion.errors import UpstreamConnectError, UpstreamError, UpstreamTimeout
from bastion.tls.upstream import UpstreamTLS, describe_tls_error, report_failure


class UpstreamPool:
    """Idle connections and connection counts per upstream ``(scheme, host, port)``."""

    def __init__(self, ctx: EngineContext) -> None:
        self.ctx = ctx
        pool = ctx.config.pool
        self.max_connections = pool.max_connections
        self.max_idle = pool.max_idle
        self.idle_timeout = pool.idle_timeout
        self.idle: dict[PoolKey, list[UpstreamConnection]] = {}
        self.counts: dict[PoolKey, int] = {}
        self.waiting: dict[PoolKey, deque[tuple[UpstreamURL, Exchange]]] = {}
        self.closed = False
        self.keys: dict[int, PoolKey] = {}  # by id() of the route's (long-lived) UpstreamURL
        # Routes with their own upstream TLS settings, by id() of their UpstreamURL.
        self.tls_routes: dict[int, str] = {}
        self.route_names: dict[int, str] = {}
        self._tls: dict[str, UpstreamTLS] = {}
        self.add_routes(ctx.config.routes)

    def add_routes(self, routes: Sequence[RouteConfig]) -> None:
        """Know the upstreams of ``routes`` (at start, and on a config reload). The caller keeps
        every config it applied alive, so that the id()-keyed tables never see an id reused."""
        tls = self.ctx.config.tls
        for route in routes:
            if route.name in tls.upstream_routes:
                self.tls_routes[id(route.upstream)] = route.name
            self.route_names[id(route.upstream)] = route.name
        for route in routes:  # a bad CA or client certificate fails here, not on a request
            if route.upstream.scheme == "https":
                self._upstream_tls(self._scheme(route.upstream))

    def acquire(self, url: UpstreamURL, exchange: Exchange, *, fresh: bool = False) -> None:
        """Send ``exchange`` on an idle connection, a new one, or once one frees up."""
        key = self.keys.get(id(url))
        if key is None:
            key = self.keys[id(url)] = (self._scheme(url), url.host, url.port)
        idle = self.idle.get(key)
        while idle and not fresh:
            conn = idle.pop()
            transport = conn.transport
            if not conn.closed and transport is not None and not transport.is_closing():
                conn.send(exchange, reused=True)
                return
            conn.close()
        if self.counts.get(key, 0) < self.max_connections:
            self.counts[key] = self.counts.get(key, 0) + 1
            self.ctx.loop.create_task(self._open(key, url, exchange))
        else:
            self.waiting.setdefault(key, deque()).append((url, exchange))

    async def _open(self, key: PoolKey, url: UpstreamURL, exchange: Exchange) -> None:
        ctx = self.ctx
        tls = self._upstream_tls(key[0]) if url.scheme == "https" else None
        try:
            transport, conn = await asyncio.wait_for(
                ctx.loop.create_connection(
                    lambda: UpstreamConnection(self, key),
                    url.host,
                    url.port,
                    ssl=tls.context if tls is not None else None,
                    server_hostname=(tls.server_name or url.host) if tls is not None else None,
                ),
                ctx.upstream_connect,
            )
        except TimeoutError:
            self._lost(key)
            self._fail(exchange, UpstreamTimeout("connecting to the upstream timed out"))
            return
        except ssl.SSLError as exc:
            self._lost(key)
            self._fail(exchange, self._tls_failed(url, exchange, describe_tls_error(exc)))
            return
        except OSError as exc:
            self._lost(key)
            self._fail(exchange, UpstreamConnectError(type(exc).__name__))
            return
        if tls is not None and tls.pins:
            refused = tls.pin_failure(transport)
            if refused is not None:
                conn.close()
                self._fail(exchange, self._tls_failed(url, exchange, refused))
                return
        if exchange.conn.closed or exchange.status > 0:
            self.release(conn)
            return
        conn.send(exchange, reused=False)

    def _scheme(self, url: UpstreamURL) -> str:
        """The first part of a pool key: the URL's scheme, or ``https+ROUTE`` for a route with
        its own TLS settings (so that it never shares connections with another route)."""
        own = self.tls_routes.get(id(url))
        return url.scheme if own is None or url.scheme != "https" else f"https+{own}"

    def _upstream_tls(self, scheme: str) -> UpstreamTLS:
        """The compiled settings of ``https`` (``tls.upstream``) or ``https+ROUTE``."""
        found = self._tls.get(scheme)
        if found is None:
            tls = self.ctx.config.tls
            _, _, route = scheme.partition("+")
            settings = tls.upstream_routes.get(route, tls.upstream) if route else tls.upstream
            found = self._tls[scheme] = UpstreamTLS(settings)
        return found

    def _tls_failed(self, url: UpstreamURL, exchange: Exchange, reason: str) -> UpstreamError:
        conn = exchange.conn
        return report_failure(
            self.ctx.chain.events,
            self.route_names.get(id(url), "-"),
            url.authority,
            reason,
            conn.peer.ip,
            exchange.request_id,
        )

    @staticmethod
    def _fail(exchange: Exchange, error: UpstreamError) -> None:
        if not exchange.conn.closed and exchange.status <= 0:
            dispatch.upstream_failed(exchange, error)

    def release(self, conn: UpstreamConnection, now: float = 0.0) -> None:
        """A connection finished a complete exchange: hand it to a waiter, keep it, or close it.

        ``now`` is the loop time if the caller has just read it."""
        key = conn.key
        if self.waiting:
            waiting = self.waiting.get(key)
            while waiting:
                _, exchange = waiting.popleft()
                if not exchange.conn.closed and exchange.status <= 0:
                    conn.send(exchange, reused=True)
                    return
        idle = self.idle.get(key)
        if idle is None:
            idle = self.idle[key] = []
        if self.closed or len(idle) >= self.max_idle:
            conn.close()
            return
        conn.deadline = (now or self.ctx.loop.time()) + self.idle_timeout
        idle.append(conn)

    def forget(self, conn: UpstreamConnection) -> None:
        """A connection closed: it no longer counts, and a waiter may open a new one."""
        idle = self.idle.get(conn.key)
        if idle and conn in idle:
            idle.remove(conn)
        self._lost(conn.key)

    def _lost(self, key: PoolKey) -> None:
        self.counts[key] = max(0, self.counts.get(key, 0) - 1)
        waiting = self.waiting.get(key)
        while waiting:
            url, exchange = waiting.popleft()
            if not exchange.conn.closed and exchange.status <= 0:
                self.acquire(url, exchange)
                return

    def close(self) -> None:
        self.closed = True
        for idle in self.idle.values():
            for conn in list(idle):
                conn.close()
        self.idle.clear()
