"""Everything the admin endpoints work with, in one object built by the serving runtime."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bastion.admin.history import TrafficHistory
from bastion.admin.service import KeyService
from bastion.admin.sessions import Sessions
from bastion.admin.tokens import Principal, TokenBook
from bastion.config.admin import AdminTokenConfig
from bastion.config.models import BastionConfig
from bastion.control.audit import Actor, AuditLog
from bastion.control.recent import EventSource, RecentEvents
from bastion.control.reload import Reloader
from bastion.observability.traffic import TrafficSnapshot


@dataclass
class AdminPlane:
    """The admin listener's state: config in force, tokens, sessions, audit log, events, reload.

    ``config`` is a callable so that everything follows a reload (admin tokens included: they
    can be rotated by editing the file and reloading).
    """

    config: Callable[[], BastionConfig]
    audit: AuditLog
    recent: Callable[[], RecentEvents]
    snapshot: Callable[[], TrafficSnapshot]
    reloader: Reloader | None = None
    # A persistent event store answering the same EventQuery; None: the in-memory ring answers.
    event_source: Callable[[], EventSource] | None = None
    started_at: float = field(default_factory=time.time)
    _book: tuple[tuple[AdminTokenConfig, ...], TokenBook] | None = None
    sessions: Sessions = field(init=False)
    keys: KeyService = field(init=False)
    history: TrafficHistory = field(init=False)
    _task: asyncio.Task[None] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.sessions = Sessions(self.config().admin.session_ttl)
        self.keys = KeyService(self.config)
        self.history = TrafficHistory(self.snapshot)

    @property
    def tokens(self) -> TokenBook:
        config = self.config()
        if self._book is None or self._book[0] is not config.admin.tokens:
            self._book = (config.admin.tokens, TokenBook(config.admin.tokens))
        return self._book[1]

    def start(self) -> None:
        """Start sampling traffic for the dashboard's charts (in the serving event loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.history.run())

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        close = getattr(self.event_source(), "close", None) if self.event_source else None
        if callable(close):  # the event store's connection
            await asyncio.to_thread(close)

    def actor(self, principal: Principal | None, ip: str) -> Actor:
        if principal is None:
            return Actor("anonymous", "none", ip)
        return Actor(principal.name, principal.role, ip)
