"""The guard contract: one small protocol, like an Envoy filter that continues or stops.

A guard's ``check`` may be synchronous (returning the decision) or asynchronous (returning an
awaitable); the chain awaits only when it must, because a coroutine per guard per request is a cost
the hot path should not pay for guards that never wait.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable
from typing import ClassVar, Protocol, runtime_checkable

from bastion.pipeline.decisions import Decision
from bastion.pipeline.request import Request


class Phase(enum.IntEnum):
    """Where a guard runs. Lower phases run first; ``order.GUARD_ORDER`` ranks guards inside one."""

    CONNECTION = 10
    ROUTE = 20
    AUTHENTICATE = 30
    AUTHORIZE = 40
    RATE_LIMIT = 50
    VALIDATE = 60
    FORWARD = 70
    RESPOND = 80
    LOG = 90


@runtime_checkable
class Guard(Protocol):
    """Inspects a request and decides.

    ``name`` is the guard's stable identifier (its row in ``GUARD_ORDER``). ``requires_body``
    asks the engine to buffer the body (up to the configured maximum) before ``check`` runs;
    otherwise the body streams to the upstream untouched. ``fail_open`` says what an exception
    inside the guard means: refuse the request (``False``, the default) or let it pass.
    """

    name: ClassVar[str]
    phase: ClassVar[Phase]
    requires_body: ClassVar[bool]
    fail_open: bool

    def check(self, request: Request) -> Decision | Awaitable[Decision]: ...


class ResponseHook(Protocol):
    """Optional on a guard: adjust response headers before they are sent (after the upstream)."""

    def on_response(
        self, request: Request, status: int, headers: list[tuple[str, str]]
    ) -> None: ...


class CompletionHook(Protocol):
    """Optional on a guard: accounting once the response is fully sent (or the exchange failed)."""

    def on_complete(
        self, request: Request, status: int, bytes_sent: int, seconds: float
    ) -> None: ...


class Lifecycle(Protocol):
    """Optional on a guard that holds connections (Redis, a key store): ``start`` runs once in
    the serving event loop before traffic, ``close`` once after it. Both must be idempotent, since
    guards may share one resource."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...
