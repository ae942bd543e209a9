"""The guard chain: runs guards in table order, stops at the first denial, records each decision.

The chain, not the guards, emits the security events, so every denial is logged exactly once and a
guard cannot forget to. A guard that raises is a bug or an infrastructure failure: the chain turns
it into that guard's fail-open / fail-closed decision and records that too.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Final, cast

from bastion.errors import describe
from bastion.observability.events import EventSink, SecurityEvent
from bastion.pipeline.decisions import ALLOW, Allow, Decision, Deny
from bastion.pipeline.guard import CompletionHook, Guard, Lifecycle, ResponseHook
from bastion.pipeline.identity import IDENTITY
from bastion.pipeline.observer import ExchangeObserver
from bastion.pipeline.order import ordered
from bastion.pipeline.request import Request

logger = logging.getLogger("bastion.pipeline")

_now: Final[Callable[[], float]] = time.time
Check = Callable[[Request], Decision | Awaitable[Decision]]

GUARD_FAILED = Deny(
    503,
    "guard.unavailable",
    "Service Unavailable",
    "A security check could not be completed; the request was refused.",
    headers=(("retry-after", "1"),),
)


def _name(hook: object) -> str:
    return str(getattr(hook, "name", type(hook).__name__))


class GuardChain:
    """An immutable, ordered set of guards plus the sink their decisions go to."""

    __slots__ = (
        "_checks",
        "_complete_hooks",
        "_completes",
        "_emit",
        "_events",
        "_names",
        "_observed_completes",
        "_observed_hooks",
        "_response_hooks",
        "guards",
        "observer",
        "requires_body",
        "unobserved_hooks",
    )

    def __init__(self, guards: Sequence[Guard], events: EventSink) -> None:
        self.guards: tuple[Guard, ...] = tuple(ordered(guards))
        self._names: tuple[str, ...] = tuple(g.name for g in self.guards)
        # Each guard's check, bound once: a call per guard per request without a lookup by name.
        self._checks: tuple[Check, ...] = tuple(g.check for g in self.guards)
        self._events = events
        self._emit: Callable[[SecurityEvent], None] = events.emit
        self.requires_body = any(g.requires_body for g in self.guards)
        self._response_hooks = tuple(
            cast(ResponseHook, g) for g in self.guards if callable(getattr(g, "on_response", None))
        )
        self._complete_hooks = tuple(
            cast(CompletionHook, g)
            for g in self.guards
            if callable(getattr(g, "on_complete", None))
        )
        # Bound once too: completion hooks run for every exchange (the detectors' feed).
        self._completes: tuple[Callable[[Request, int, int, float], None], ...] = tuple(
            hook.on_complete for hook in self._complete_hooks
        )
        # The guard a host may hand each completed exchange to itself (bastion.pipeline.observer),
        # and the hooks left for the chain then: every one but the observer's.
        observers = [g for g in self.guards if isinstance(g, ExchangeObserver)]
        self.observer: ExchangeObserver | None = observers[0] if observers else None
        observer: object = self.observer
        self._observed_hooks = tuple(h for h in self._complete_hooks if h is not observer)
        self._observed_completes: tuple[Callable[[Request, int, int, float], None], ...] = tuple(
            hook.on_complete for hook in self._observed_hooks
        )
        self.unobserved_hooks = len(self._observed_hooks)  # hooks besides the observer's

    async def start(self) -> None:
        """Start the guards that hold connections, in chain order. A guard whose backend is not
        there yet is not fatal: its failure policy decides until the backend comes."""
        for guard in self.guards:
            if callable(getattr(guard, "start", None)):
                try:
                    await cast(Lifecycle, guard).start()
                except Exception as exc:
                    logger.error("guard %s did not start: %s", guard.name, describe(exc))

    async def close(self) -> None:
        """Release what ``start`` opened, in reverse order."""
        for guard in reversed(self.guards):
            if callable(getattr(guard, "close", None)):
                try:
                    await cast(Lifecycle, guard).close()
                except Exception as exc:
                    logger.error("guard %s did not close cleanly: %s", guard.name, describe(exc))

    @property
    def events(self) -> EventSink:
        """Where the chain's security events go."""
        return self._events

    @events.setter
    def events(self, events: EventSink) -> None:
        self._events = events
        self._emit = events.emit

    @property
    def empty(self) -> bool:
        return not self.guards

    def names(self) -> list[str]:
        return [g.name for g in self.guards]

    def decide(self, request: Request) -> Decision | Coroutine[Any, Any, Decision]:
        """Every guard's decision in order; the first :class:`Deny` wins.

        The result is an :class:`Allow` carrying the response headers of every guard that added
        some, or the denial. While guards answer synchronously the chain does too, so a request
        with synchronous guards costs no coroutine (and no StopIteration); from the first guard
        that must wait, the rest runs in the coroutine this returns.
        """
        added: list[tuple[str, str]] | None = None
        guards = self.guards
        checks = self._checks
        for index in range(len(checks)):
            try:
                result = checks[index](request)
                # Exact type checks first: far cheaper than inspect.isawaitable, which the chain
                # would otherwise pay per guard per request.
                if result is ALLOW:
                    continue
                kind = type(result)
                if kind is not Allow and kind is not Deny and inspect.isawaitable(result):
                    return self._resume(request, index, result, added)
            except Exception as exc:
                result = self._failed(guards[index], request, exc)
            if isinstance(result, Deny):
                self._record(guards[index], request, result)
                return result
            allow = cast(Allow, result)
            event = allow.event
            if event is not None:
                self._succeeded(self._names[index], request, event, allow)
            headers = allow.headers
            if headers:
                if added is None:
                    added = []
                added.extend(headers)
        if added is None:
            return ALLOW
        return Allow(tuple(added))

    def _succeeded(self, guard: str, request: Request, event: str, allow: Allow) -> None:
        """The success event of ``allow`` (an ``auth.success`` per authenticated request): the
        same event as :meth:`_record` builds, from the values at hand."""
        identity = request.state.get(IDENTITY)
        self._emit(
            SecurityEvent(
                event,
                "success",
                _now(),
                guard,
                request.request_id,
                request.client.ip,
                request.method,
                request.path,
                None,
                "",
                identity.consumer if identity is not None else None,
                allow.fields,  # the shared empty mapping unless the guard gave fields
            )
        )

    async def _resume(
        self,
        request: Request,
        index: int,
        pending: Awaitable[Decision],
        added: list[tuple[str, str]] | None,
    ) -> Decision:
        """The rest of :meth:`decide`, from guard ``index`` whose answer is ``pending``."""
        guards = self.guards
        while True:
            guard = guards[index]
            try:
                result: Decision = await pending
            except Exception as exc:
                result = self._failed(guard, request, exc)
            if self._absorb(guard, request, result):
                return result
            headers = cast(Allow, result).headers
            if headers:
                if added is None:
                    added = []
                added.extend(headers)
            index += 1
            if index == len(guards):
                break
            pending = self._answer(index, request)
        if added is None:
            return ALLOW
        return Allow(tuple(added))

    async def _answer(self, index: int, request: Request) -> Decision:
        result = self._checks[index](request)
        if inspect.isawaitable(result):
            return await result
        return result

    def _absorb(self, guard: Guard, request: Request, result: Decision) -> bool:
        """Record ``result`` if it asks to be; true when it is a denial (the chain stops)."""
        if isinstance(result, Deny):
            self._record(guard, request, result)
            return True
        if result.event is not None:
            self._record(guard, request, result)
        return False

    async def run(self, request: Request) -> Decision:
        """:meth:`decide`, awaited when it has to wait."""
        result = self.decide(request)
        if isinstance(result, (Allow, Deny)):
            return result
        return await result

    def on_response(self, request: Request, status: int, headers: list[tuple[str, str]]) -> None:
        for hook in self._response_hooks:
            try:
                hook.on_response(request, status, headers)
            except Exception as exc:
                logger.error("response hook of %s failed: %s", _name(hook), describe(exc))

    def on_complete(
        self, request: Request, status: int, bytes_sent: int, seconds: float, observed: bool = False
    ) -> None:
        """Every completion hook; with ``observed``, all but the :attr:`observer`'s (its host
        handed it the exchange itself)."""
        if observed:
            hooks, completes = self._observed_hooks, self._observed_completes
        else:
            hooks, completes = self._complete_hooks, self._completes
        for index in range(len(completes)):
            try:
                completes[index](request, status, bytes_sent, seconds)
            except Exception as exc:
                hook = hooks[index]
                logger.error("completion hook of %s failed: %s", _name(hook), describe(exc))

    def _failed(self, guard: Guard, request: Request, exc: Exception) -> Decision:
        logger.error(
            "guard %s failed on request %s: %s", guard.name, request.request_id, describe(exc)
        )
        self._emit(
            SecurityEvent.for_request(
                request,
                action="guard.failed",
                outcome="unknown",
                guard=guard.name,
                reason=type(exc).__name__,
                fields={"fail_open": guard.fail_open},
            )
        )
        return ALLOW if guard.fail_open else GUARD_FAILED

    def _record(self, guard: Guard, request: Request, decision: Decision) -> None:
        identity = request.state.get(IDENTITY)
        user_id = identity.consumer if identity is not None else None
        if isinstance(decision, Deny):
            event = SecurityEvent.for_request(
                request,
                action=decision.code,
                outcome="failure",
                guard=guard.name,
                status=decision.status,
                reason=decision.detail or decision.title,
                user_id=user_id,
                fields=decision.fields,
            )
        else:
            event = SecurityEvent.for_request(
                request,
                action=decision.event or guard.name,
                outcome="success",
                guard=guard.name,
                user_id=user_id,
                fields=decision.fields,
            )
        self._emit(event)
