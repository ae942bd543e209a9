"""TLS in a serving process: the listener's context, reloading, the plain-HTTP listener and
expiry events, started and stopped by :func:`bastion.engine.runtime.serve` in a few lines."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from pathlib import Path

from bastion.config.models import BastionConfig
from bastion.engine.server import GatewayServer
from bastion.observability.events import EventSink
from bastion.tls.devca import trust_instructions
from bastion.tls.expiry import watch_expiry, watched_certificates
from bastion.tls.plain import plain_http_chain
from bastion.tls.server import ServerTLS, describe_listener

logger = logging.getLogger("bastion.tls")


def log_weaker_choices(config: BastionConfig) -> None:
    """A weaker choice must be spelled out in config, and is said at start."""
    tls = config.tls
    if tls.enabled and not tls.hsts.enabled:
        logger.warning("tls: HSTS is off (tls.hsts.enabled: false): browsers may try plain HTTP")
    upstreams = {"tls.upstream": tls.upstream} | {
        f"tls.upstream_routes.{name}": value for name, value in tls.upstream_routes.items()
    }
    for where, upstream in upstreams.items():
        if not upstream.verify:
            logger.warning(
                "tls: %s.verify is false: https upstreams are not authenticated, anyone on"
                " the path can read and change the traffic",
                where,
            )
    plain_routes = [r.name for r in config.routes if r.upstream.scheme == "http"]
    if tls.enabled and plain_routes:
        logger.info(
            "tls: routes %s reach their upstream over plain HTTP; protect that link",
            ", ".join(plain_routes),
        )


class TLSRuntime:
    """What one serving process runs for TLS; ``None`` from :meth:`create` when TLS is off."""

    def __init__(self, config: BastionConfig, events: EventSink) -> None:
        self.config = config
        self.events = events
        self.server = ServerTLS(config.tls, config.state_dir)
        self.plain: GatewayServer | None = None
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    @classmethod
    def create(cls, config: BastionConfig, events: EventSink) -> TLSRuntime | None:
        log_weaker_choices(config)
        if not config.tls.enabled:
            return None
        runtime = cls(config, events)
        runtime.server.load()
        dev = runtime.server.dev
        if dev is not None and runtime.server.dev_created:
            for line in trust_instructions(dev, created=True).splitlines():
                logger.warning("tls: %s", line)
        return runtime

    @property
    def context(self) -> ssl.SSLContext:
        assert self.server.context is not None
        return self.server.context

    def describe(self) -> str:
        text = describe_listener(self.server)
        if self.plain is not None:
            text += f"; plain HTTP on {self.config.tls.plain_http.listen}"
            text += f" ({self.config.tls.plain_http.policy})"
        return text

    async def start(self, https_port: int, *, reuse_port: bool = False) -> None:
        """After the TLS listener is up: reloading, expiry checks, the plain listener."""
        tls = self.config.tls
        self.tasks.append(asyncio.create_task(self.server.watch(self.stop)))
        self.tasks.append(
            asyncio.create_task(
                watch_expiry(self._certificates, tls.expiry_warning, self.events, self.stop)
            )
        )
        if tls.plain_http.listen is not None:
            chain = plain_http_chain(self.config, self.events, https_port)
            self.plain = GatewayServer(
                config=self.config, chain=chain, listen=tls.plain_http.listen, reuse_port=reuse_port
            )
            await self.plain.start()

    def _certificates(self) -> list[tuple[str, Path]]:
        return watched_certificates(self.config.tls, [f.cert for f in self.server.files])

    async def close(self, grace: float) -> None:
        self.stop.set()
        if self.plain is not None:
            await self.plain.shutdown(grace)
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
