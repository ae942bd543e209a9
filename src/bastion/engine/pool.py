"""The upstream connection pool: idle keep-alive connections and connection counts per upstream.

A connection is handed out again only after a complete exchange (see
:mod:`bastion.engine.upstream`). When ``pool.max_connections`` are open to one upstream, further
exchanges wait for one to free up, in arrival order. TLS to ``https`` upstreams verifies
certificates against the system trust store (``ssl.create_default_context``).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque

from bastion.config.types import UpstreamURL
from bastion.engine import dispatch
from bastion.engine.context import EngineContext
from bastion.engine.exchange import Exchange
from bastion.engine.upstream import PoolKey, UpstreamConnection
from bastion.errors import UpstreamConnectError, UpstreamError, UpstreamTimeout


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
        self._tls: ssl.SSLContext | None = None

    def acquire(self, url: UpstreamURL, exchange: Exchange, *, fresh: bool = False) -> None:
        """Send ``exchange`` on an idle connection, a new one, or once one frees up."""
        key = self.keys.get(id(url))
        if key is None:
            key = self.keys[id(url)] = (url.scheme, url.host, url.port)
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
        tls = self._tls_context() if url.scheme == "https" else None
        try:
            _, conn = await asyncio.wait_for(
                ctx.loop.create_connection(
                    lambda: UpstreamConnection(self, key),
                    url.host,
                    url.port,
                    ssl=tls,
                    server_hostname=url.host if tls else None,
                ),
                ctx.upstream_connect,
            )
        except TimeoutError:
            self._lost(key)
            self._fail(exchange, UpstreamTimeout("connecting to the upstream timed out"))
            return
        except (OSError, ssl.SSLError) as exc:
            self._lost(key)
            self._fail(exchange, UpstreamConnectError(type(exc).__name__))
            return
        if exchange.conn.closed or exchange.status > 0:
            self.release(conn)
            return
        conn.send(exchange, reused=False)

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls

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
