"""The login preset: failed attempts on login and token endpoints lock the client out.

On by default for ``/oauth/token`` and every route marked ``login: true``. Failures are answers
whose status is a failure status (401 and 403 by default), whoever produced them (bastion's own
authentication or the upstream's login handler). They are counted per client IP and per account
(the HTTP Basic user name, the authenticated consumer, or a configured header); reaching the limit
locks that IP or account out with a growing back-off, answered 429 before any credential is
checked, so a credential-stuffing run stops costing verification work. Every lockout is a
security event, which feeds the detectors and alerts.

The check runs right after routing (before authentication); the counting runs when the response
is complete. A success clears the account's failures, never the IP's: one valid account does not
whitewash an IP that is trying many.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import Awaitable
from typing import ClassVar, cast

from bastion.config.ratelimit import LoginConfig
from bastion.errors import BackendUnavailable, describe
from bastion.observability.events import EventSink, SecurityEvent
from bastion.pipeline.decisions import ALLOW, Decision, Deny
from bastion.pipeline.guard import Phase
from bastion.pipeline.identity import IDENTITY
from bastion.pipeline.request import Request
from bastion.pipeline.routing import ROUTE
from bastion.ratelimit.core import AsyncLockout, Lockout
from bastion.ratelimit.guard import BACKEND_DOWN, Storage, StorageLifecycle
from bastion.ratelimit.headers import seconds

logger = logging.getLogger("bastion.ratelimit")

_MAX_ACCOUNT = 256


def basic_user(authorization: str | None) -> str | None:
    """The user name of an HTTP Basic ``Authorization`` value (never the password)."""
    if authorization is None or authorization[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, _ = decoded.partition(":")
    return user[:_MAX_ACCOUNT] if sep and user else None


class LoginGuard(StorageLifecycle):
    """The ``login_limit`` guard."""

    name: ClassVar[str] = "login_limit"
    phase: ClassVar[Phase] = Phase.ROUTE
    requires_body: ClassVar[bool] = False

    def __init__(
        self,
        config: LoginConfig,
        login_routes: frozenset[str],
        lockout: Lockout | AsyncLockout,
        events: EventSink,
        *,
        shared: bool,
        storage: Storage | None = None,
    ) -> None:
        self.fail_open = False
        self._storage = storage
        self._paths = frozenset(config.paths)
        self._routes = login_routes
        self._failures = frozenset(config.failure_statuses)
        self._header = config.account_header
        self._lockout = lockout
        self._events = events
        self._shared = shared
        self._tasks: set[asyncio.Task[None]] = set()

    def is_login(self, request: Request) -> bool:
        if request.path in self._paths:
            return True
        if not self._routes:
            return False
        route = request.state.get(ROUTE)
        return route is not None and route.name in self._routes

    def accounts(self, request: Request) -> list[str]:
        """The lockout keys of a request: its IP, and its account when one is named."""
        keys = ["ip:" + request.client.ip]
        account = basic_user(request.headers.get("authorization"))
        if account is None and self._header is not None:
            value = request.headers.get(self._header)
            account = value[:_MAX_ACCOUNT] if value else None
        if account is None:
            identity = request.state.get(IDENTITY)
            account = identity.consumer if identity is not None else None
        if account is not None:
            keys.append("acct:" + account)
        return keys

    def check(self, request: Request) -> Decision | Awaitable[Decision]:
        if not self.is_login(request):
            return ALLOW
        keys = self.accounts(request)
        if self._shared:
            return self._check_shared(keys)
        lockout = cast(Lockout, self._lockout)
        return self._decide(keys, [lockout.locked_for(key) for key in keys])

    async def _check_shared(self, keys: list[str]) -> Decision:
        lockout = cast(AsyncLockout, self._lockout)
        try:
            return self._decide(keys, [await lockout.locked_for(key) for key in keys])
        except BackendUnavailable:
            return BACKEND_DOWN

    def _decide(self, keys: list[str], waits: list[float]) -> Decision:
        wait = max(waits)
        if wait <= 0:
            return ALLOW
        retry = max(1, seconds(wait))
        kinds = [key.partition(":")[0] for key, w in zip(keys, waits, strict=True) if w > 0]
        return Deny(
            429,
            "ratelimit.login_locked",
            "Too Many Requests",
            f"Too many failed attempts; retry after {retry} seconds.",
            headers=(("retry-after", str(retry)),),
            fields={"policy": "login", "locked": kinds, "retry_after": retry},
            extensions={"violated-policies": ["login"]},
        )

    def on_complete(self, request: Request, status: int, bytes_sent: int, seconds: float) -> None:
        if not self.is_login(request):
            return
        failed = status in self._failures
        if not failed and not 200 <= status < 400:
            return
        keys = self.accounts(request)
        if self._shared:
            task = asyncio.get_running_loop().create_task(self._count_shared(request, keys, failed))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        lockout = cast(Lockout, self._lockout)
        if failed:
            for key in keys:
                self._locked(request, key, lockout.failure(key))
        else:
            for key in keys[1:]:
                lockout.success(key)

    async def _count_shared(self, request: Request, keys: list[str], failed: bool) -> None:
        lockout = cast(AsyncLockout, self._lockout)
        try:
            if failed:
                for key in keys:
                    self._locked(request, key, await lockout.failure(key))
            else:
                for key in keys[1:]:
                    await lockout.success(key)
        except Exception as exc:
            logger.error("login attempt not counted: %s", describe(exc))

    def _locked(self, request: Request, key: str, duration: float) -> None:
        if duration <= 0:
            return
        self._events.emit(
            SecurityEvent.for_request(
                request,
                action="ratelimit.lockout",
                outcome="failure",
                guard=self.name,
                status=429,
                reason="too many failed login attempts",
                fields={"locked": key.partition(":")[0], "seconds": round(duration, 3)},
            )
        )
