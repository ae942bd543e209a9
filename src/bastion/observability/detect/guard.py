"""The ``monitor`` guard: allows every request, then feeds each completed exchange to the
detectors (its completion hook, in the LOG phase).

``check`` returns the shared ``ALLOW`` and does nothing else; ``on_complete`` reads what the
chain already found (the identity, the route) and the client address the engine derived from
trusted proxies, and hands plain values to the monitor.
"""

from __future__ import annotations

from typing import ClassVar

from bastion.observability.detect.monitor import Monitor
from bastion.pipeline.decisions import ALLOW, Decision
from bastion.pipeline.guard import Phase
from bastion.pipeline.identity import IDENTITY
from bastion.pipeline.request import Request
from bastion.pipeline.routing import ROUTE
from bastion.ratelimit.login import basic_user

_MAX_ACCOUNT = 256


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


class MonitorGuard:
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
        consumer = identity.consumer if identity is not None else None
        route = state.get(ROUTE)
        name = route.name if route is not None else "-"
        ip = request.client.ip
        self.monitor.exchange(
            consumer, ip, name, request.path, status, request_size(request), bytes_sent
        )
        if (status == 401 or status == 403) and name in self.login_routes:
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
