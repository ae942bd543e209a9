"""Applying a new config to a running listener: build, start, swap, retire.

The new guard chain is built and started beside the old one; a single assignment on the event
loop (:meth:`EngineContext.use_chain`) makes every request that starts afterwards use it, while
each exchange already started keeps the chain it started with (``Exchange.chain``) until its
response is complete. The old chain is closed once none of its exchanges is left (or after
``timeouts.shutdown_grace``). Rate-limit and login-lockout guards whose settings did not change
are carried into the new chain, counters and all, so a reload never resets a limit.

Every config applied is kept for the life of the process: the engine keys some tables by the
``id()`` of route objects, which must therefore never be reused (a reload is rare and a config
is small).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import cast

from bastion.assembly import build_gateway_chain
from bastion.config.models import BastionConfig
from bastion.engine.server import GatewayServer
from bastion.observability.events import EventSink
from bastion.pipeline.chain import GuardChain
from bastion.pipeline.guard import Guard, Lifecycle

logger = logging.getLogger("bastion.control")

CARRIED = frozenset({"rate_limit", "login_limit", "concurrency"})
DRAIN_POLL = 0.05

ChainBuilder = Callable[[BastionConfig, EventSink], GuardChain]


def _limits_unchanged(old: BastionConfig, new: BastionConfig) -> bool:
    """Whether the rate-limit guards of ``old`` decide exactly as those of ``new`` would: the
    same settings, and every route of ``new`` with the overrides (and login flag) it had in
    ``old``, a new route with none (the guards treat a route they never saw that way)."""
    if old.rate_limit != new.rate_limit or old.redis != new.redis:
        return False
    before = {r.name: (r.rate_limits, r.login) for r in old.routes}
    return all(before.get(r.name, ({}, False)) == (r.rate_limits, r.login) for r in new.routes)


class LiveChain:
    """The chain a listener serves with, and how it is replaced."""

    def __init__(
        self,
        server: GatewayServer,
        config: BastionConfig,
        events: EventSink,
        *,
        build: ChainBuilder = build_gateway_chain,
    ) -> None:
        self.server = server
        self.chain = server.chain
        self.config = config
        self.events = events
        self.build = build
        self.configs: list[BastionConfig] = [config]
        self.retiring: set[asyncio.Task[None]] = set()

    async def apply(self, config: BastionConfig) -> None:
        """Serve new requests with ``config``'s chain; raises (and changes nothing) on failure."""
        new = self.build(config, self.events)
        carried: list[Guard] = []
        if _limits_unchanged(self.config, config):
            old_limits = {g.name: g for g in self.chain.guards if g.name in CARRIED}
            guards = []
            for guard in new.guards:
                kept = old_limits.get(guard.name)
                if kept is not None:
                    carried.append(kept)
                    guards.append(kept)
                else:
                    guards.append(guard)
            new = GuardChain(guards, self.events)
        try:
            await _start(new, carried)
            ctx = self.server.context
            # Kept before the pool sees its routes: even a refused config's objects must never
            # be freed while the pool's id()-keyed tables may name them.
            self.configs.append(config)
            if ctx.pool is not None:
                ctx.pool.add_routes(config.routes)
        except BaseException:
            await _close(new, carried)
            raise
        old, self.chain, self.config = self.chain, new, config
        self.server.chain = new
        ctx.use_chain(new)
        task = asyncio.get_running_loop().create_task(self._retire(old, carried))
        self.retiring.add(task)
        task.add_done_callback(self.retiring.discard)

    def in_flight(self, chain: GuardChain) -> int:
        """Exchanges of this listener still being answered under ``chain``."""
        count = 0
        for conn in list(self.server.context.connections):
            for exchange in (conn.active, conn.current, *conn.queue):
                if exchange is not None and exchange.chain is chain and not exchange.accounted:
                    count += 1
        return count

    async def _retire(self, old: GuardChain, carried: list[Guard]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.timeouts.shutdown_grace
        while self.in_flight(old) and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(DRAIN_POLL)
        await _close(old, carried)

    async def close(self) -> None:
        """Wait for chains being retired (the current one is the caller's to close)."""
        for task in list(self.retiring):
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _start(chain: GuardChain, carried: list[Guard]) -> None:
    """Start the guards of ``chain`` that are new (carried ones run already)."""
    for guard in chain.guards:
        if guard in carried or not callable(getattr(guard, "start", None)):
            continue
        try:
            await cast(Lifecycle, guard).start()
        except Exception as exc:
            logger.error("guard %s did not start: %s", guard.name, type(exc).__name__)


async def _close(chain: GuardChain, carried: list[Guard]) -> None:
    for guard in reversed(chain.guards):
        if guard in carried or not callable(getattr(guard, "close", None)):
            continue
        try:
            await cast(Lifecycle, guard).close()
        except Exception as exc:
            logger.error("guard %s did not close cleanly: %s", guard.name, type(exc).__name__)
