"""A listener: the public gateway port, or the admin port (same engine, a chain of endpoints)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl as ssl_module

from bastion.config.models import BastionConfig
from bastion.config.types import HostPort
from bastion.engine.context import EngineContext
from bastion.engine.pool import UpstreamPool
from bastion.engine.protocol import ClientProtocol
from bastion.observability.ecs import AccessLog
from bastion.observability.traffic import TrafficStats
from bastion.pipeline.chain import GuardChain


class GatewayServer:
    """Accepts connections on ``listen`` and serves them through ``chain``, over TLS when
    ``ssl`` is given (see :class:`bastion.tls.server.ServerTLS` for the context to pass).

    ``start`` binds (port 0 picks a free port, see :attr:`port`); ``shutdown`` stops accepting,
    lets in-flight exchanges finish, closes idle keep-alive connections and, after ``grace``
    seconds, cuts whatever is left.
    """

    def __init__(
        self,
        *,
        config: BastionConfig,
        chain: GuardChain,
        listen: HostPort,
        stats: TrafficStats | None = None,
        reuse_port: bool = False,
        ssl: ssl_module.SSLContext | None = None,
        access: AccessLog | None = None,
    ) -> None:
        self.config = config
        self.access = access
        self.chain = chain
        self.listen = listen
        self.stats = stats if stats is not None else TrafficStats()
        self.reuse_port = reuse_port
        self.ssl = ssl
        self._server: asyncio.Server | None = None
        self._ctx: EngineContext | None = None

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the server is not started")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def context(self) -> EngineContext:
        if self._ctx is None:
            raise RuntimeError("the server is not started")
        return self._ctx

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        ctx = EngineContext(
            config=self.config,
            chain=self.chain,
            stats=self.stats,
            loop=loop,
            scheme="https" if self.ssl is not None else "http",
            access=self.access,
        )
        ctx.pool = UpstreamPool(ctx)
        self._ctx = ctx
        # A handshake gets the time a request head gets: a client that never finishes one
        # holds no connection slot longer than a slow request would.
        handshake = self.config.timeouts.header_read if self.ssl is not None else None
        self._server = await loop.create_server(
            lambda: ClientProtocol(ctx),
            self.listen.host,
            self.listen.port,
            ssl=self.ssl,
            ssl_handshake_timeout=handshake,
            reuse_address=True,
            reuse_port=self.reuse_port or None,
            backlog=2048,
        )
        for sock in self._server.sockets:
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        ctx.reaper.start()

    async def shutdown(self, grace: float) -> None:
        """Stop accepting, drain in-flight exchanges for up to ``grace`` seconds, then close."""
        ctx = self._ctx
        if self._server is None or ctx is None:
            return
        ctx.draining = True
        self._server.close()
        for conn in list(ctx.connections):
            if conn.active is None and not conn.queue and conn.current is None:
                conn.close()
        if ctx.connections:
            ctx.drained = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ctx.drained.wait(), grace)
        for conn in list(ctx.connections):
            conn.abort()
        if ctx.pool is not None:
            ctx.pool.close()
        ctx.reaper.stop()
        await asyncio.sleep(0)
        self._server = None
