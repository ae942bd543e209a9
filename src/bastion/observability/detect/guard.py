"""The ``monitor`` guard: allows every request, then feeds each completed exchange to the
detectors (its completion hook, in the LOG phase).

``check`` returns the shared ``ALLOW`` and does nothing else; ``on_complete`` reads what the
chain already found (the identity, the route) and the client address the engine derived from
trusted proxies, and hands plain values to the monitor.

It is the chain's exchange observer (:mod:`bastion.pipeline.observer`): the gateway's engine,
which holds those values already when an exchange completes (it writes them to the access
event), hands them to :meth:`MonitorGuard.exchange` itself and leaves this guard's
``on_complete`` out. That spares every request the chain's hook call, a second reading of the
identity and the route, and the monitor's own clock reading. The ASGI middleware calls
``on_complete``.
"""

from __future__ import annotations

import time
from typing import ClassVar, Final

from bastion.observability.detect.monitor import Monitor
from bastion.pipeline.decisions import ALLOW, Decision
from bastion.pipeline.guard import Phase
from bastion.pipeline.identity import IDENTITY
from bastion.pipeline.observer import ExchangeObserver
from bastion.pipeline.request import Request
from bastion.pipeline.routing import ROUTE
from bastion.ratelimit.login import basic_user

_MAX_ACCOUNT = 256
_WALL_CLOCK: Final = time.time


def request_size(request: Request) -> int:
    """The request body's size: the buffered body, else its Content-Length (raw scan: no header
    index is built for this), else 0 (chunked bodies are not measured)."""
    body = request.body
    if body is not None:
        return len(body)
    if request.method == "GET" or request.method == "HEAD":
        return 0
    for name, value in request.headers.raw:
        if name == b"content-length":
            # Leading zeros dropped first: int() refuses more than 4300 digits, and a raise here
            # would keep the whole exchange from the detectors.
            significant = value.lstrip(b"0")
            if value.isdigit() and len(significant) <= 18:
                return int(significant or b"0")
            return 0
    return 0


class MonitorGuard(ExchangeObserver):
    name: ClassVar[str] = "monitor"
    phase: ClassVar[Phase] = Phase.LOG
    requires_body: ClassVar[bool] = False

    def __init__(
        self,
        monitor: Monitor,
        *,
        login_routes: frozenset[str] = frozenset(),
        account_header: str | None = None,
    ) -> None:
        self.fail_open = True
        self.monitor = monitor
        self.login_routes = login_routes
        self.account_header = account_header

    def check(self, request: Request) -> Decision:
        return ALLOW

    def on_complete(self, request: Request, status: int, bytes_sent: int, seconds: float) -> None:
        state = request.state
        identity = state.get(IDENTITY)
        route = state.get(ROUTE)
        self.exchange(
            request,
            identity.consumer if identity is not None else None,
            route.name if route is not None else "-",
            request.client.ip,
            status,
            request_size(request),
            bytes_sent,
            None,
        )

    def exchange(
        self,
        request: Request,
        consumer: str | None,
        route: str,
        ip: str,
        status: int,
        request_bytes: int,
        bytes_sent: int,
        wall: float | None,
    ) -> None:
        """The exchange to the monitor; ``wall`` stands for the monitor's clock when that is the
        wall clock (a test's clock is read as it is)."""
        monitor = self.monitor
        now = wall if monitor.clock is _WALL_CLOCK else None
        monitor.exchange(consumer, ip, route, request.path, status, request_bytes, bytes_sent, now)
        if (status == 401 or status == 403) and route in self.login_routes:
            account = self.account(request)
            if account is not None:
                self.monitor.login_failure(ip, account)

    def account(self, request: Request) -> str | None:
        """The account a failed login on a login route tried (never the password)."""
        account = basic_user(request.headers.get("authorization"))
        if account is None and self.account_header is not None:
            value = request.headers.get(self.account_header)
            account = value[:_MAX_ACCOUNT] if value else None
        return account

    async def start(self) -> None:
        await self.monitor.start()

    async def close(self) -> None:
        await self.monitor.close()
