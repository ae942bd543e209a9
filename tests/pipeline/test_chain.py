"""The guard chain: order by the table, first denial wins, one event per decision, failures."""

from __future__ import annotations

from typing import ClassVar

import pytest

from bastion.observability.events import MemorySink
from bastion.pipeline import ALLOW, Allow, Decision, Deny, GuardChain, Phase, Request
from bastion.pipeline.identity import IDENTITY, Identity
from bastion.pipeline.order import GUARD_ORDER
from bastion.pipeline.request import ClientAddress, Headers


def make_request(path: str = "/x") -> Request:
    return Request(
        method="GET",
        path=path,
        query="",
        headers=Headers([(b"host", b"api.test")]),
        client=ClientAddress("203.0.113.9", 5000),
        request_id="rid-1",
    )


class Recorder:
    """A guard that records its call into a shared list and returns a fixed decision."""

    requires_body: ClassVar[bool] = False

    def __init__(self, name: str, phase: Phase, calls: list[str], decision: Decision = ALLOW):
        self.name = name  # type: ignore[misc]
        self.phase = phase  # type: ignore[misc]
        self.calls = calls
        self.decision = decision
        self.fail_open = False

    def check(self, request: Request) -> Decision:
        self.calls.append(self.name)
        return self.decision


class AsyncRecorder(Recorder):
    async def check(self, request: Request) -> Decision:  # type: ignore[override]
        self.calls.append(self.name)
        return self.decision


class Exploding(Recorder):
    def check(self, request: Request) -> Decision:
        raise RuntimeError("backend down: redis://user:hunter2@cache")


async def test_guards_run_in_phase_order_whatever_the_configured_order() -> None:
    calls: list[str] = []
    guards = [
        Recorder("validate", Phase.VALIDATE, calls),
        AsyncRecorder("auth", Phase.AUTHENTICATE, calls),
        Recorder("limit", Phase.RATE_LIMIT, calls),
        Recorder("router", Phase.ROUTE, calls),
    ]
    chain = GuardChain(guards, MemorySink())
    assert await chain.run(make_request()) is ALLOW
    assert calls == ["router", "auth", "limit", "validate"]


async def test_first_denial_stops_the_chain_and_is_recorded_once() -> None:
    calls: list[str] = []
    events = MemorySink()
    deny = Deny(401, "auth.missing_credentials", "Unauthorized", "No credentials were sent.")
    chain = GuardChain(
        [
            Recorder("auth", Phase.AUTHENTICATE, calls, deny),
            Recorder("limit", Phase.RATE_LIMIT, calls),
        ],
        events,
    )
    assert await chain.run(make_request()) is deny
    assert calls == ["auth"]
    assert events.actions() == ["auth.missing_credentials"]
    event = events.events[0]
    assert (event.outcome, event.guard, event.status) == ("failure", "auth", 401)
    assert (event.request_id, event.client_ip, event.path) == ("rid-1", "203.0.113.9", "/x")


async def test_allow_headers_merge_and_only_marked_allows_emit_events() -> None:
    calls: list[str] = []
    events = MemorySink()
    chain = GuardChain(
        [
            Recorder("a", Phase.AUTHENTICATE, calls, Allow(event="auth.success")),
            Recorder("b", Phase.RATE_LIMIT, calls, Allow(headers=(("ratelimit", "r=9"),))),
            Recorder("c", Phase.VALIDATE, calls, Allow(headers=(("x-c", "1"),))),
        ],
        events,
    )
    decision = await chain.run(make_request())
    assert isinstance(decision, Allow)
    assert decision.headers == (("ratelimit", "r=9"), ("x-c", "1"))
    assert events.actions() == ["auth.success"]
    assert events.events[0].outcome == "success"


async def test_a_failing_guard_fails_closed_by_default_without_leaking_the_error() -> None:
    events = MemorySink()
    chain = GuardChain([Exploding("limit", Phase.RATE_LIMIT, [])], events)
    decision = await chain.run(make_request())
    assert isinstance(decision, Deny)
    assert (decision.status, decision.code) == (503, "guard.unavailable")
    assert "hunter2" not in decision.detail
    assert events.actions() == ["guard.failed", "guard.unavailable"]
    assert all("hunter2" not in repr(e.to_ecs()) for e in events.events)


async def test_a_failing_guard_configured_fail_open_lets_the_request_pass() -> None:
    calls: list[str] = []
    guard = Exploding("limit", Phase.RATE_LIMIT, calls)
    guard.fail_open = True
    after = Recorder("validate", Phase.VALIDATE, calls)
    events = MemorySink()
    chain = GuardChain([guard, after], events)
    assert await chain.run(make_request()) is ALLOW
    assert calls == ["validate"]
    assert events.actions() == ["guard.failed"]
    assert events.events[0].fields == {"fail_open": True}


async def test_empty_chain_allows_and_needs_no_body() -> None:
    chain = GuardChain([], MemorySink())
    assert chain.empty
    assert not chain.requires_body
    assert await chain.run(make_request()) is ALLOW


def test_requires_body_is_the_union_of_guards() -> None:
    class BodyGuard(Recorder):
        requires_body: ClassVar[bool] = True

    chain = GuardChain(
        [Recorder("a", Phase.ROUTE, []), BodyGuard("b", Phase.VALIDATE, [])], MemorySink()
    )
    assert chain.requires_body


def test_unranked_guards_run_after_builtins_of_their_phase() -> None:
    calls: list[str] = []
    custom = Recorder("custom", Phase.ROUTE, calls)
    router = Recorder("router", Phase.ROUTE, calls)
    chain = GuardChain([custom, router], MemorySink())
    assert chain.names() == ["router", "custom"]


def test_order_table_rows_are_unique_places() -> None:
    places = list(GUARD_ORDER.values())
    assert len(places) == len(set(places))


class HookGuard(Recorder):
    def __init__(self, calls: list[str]) -> None:
        super().__init__("hook", Phase.RESPOND, calls)
        self.completed: list[tuple[int, int]] = []

    def on_response(self, request: Request, status: int, headers: list[tuple[str, str]]) -> None:
        headers.append(("x-hook", str(status)))

    def on_complete(self, request: Request, status: int, bytes_sent: int, seconds: float) -> None:
        self.completed.append((status, bytes_sent))


def test_response_and_completion_hooks_are_called() -> None:
    guard = HookGuard([])
    chain = GuardChain([guard], MemorySink())
    headers: list[tuple[str, str]] = []
    chain.on_response(make_request(), 201, headers)
    chain.on_complete(make_request(), 201, 17, 0.01)
    assert headers == [("x-hook", "201")]
    assert guard.completed == [(201, 17)]


@pytest.mark.parametrize("bad", ["raise"])
def test_a_raising_response_hook_does_not_break_the_response(bad: str) -> None:
    class BadHook(HookGuard):
        def on_response(
            self, request: Request, status: int, headers: list[tuple[str, str]]
        ) -> None:
            raise ValueError(bad)

    chain = GuardChain([BadHook([])], MemorySink())
    headers: list[tuple[str, str]] = [("a", "b")]
    chain.on_response(make_request(), 200, headers)
    assert headers == [("a", "b")]


class Authenticates(Recorder):
    """Sets an identity, as an authentication guard does."""

    def check(self, request: Request) -> Decision:
        request.state[IDENTITY] = Identity(consumer="acme", method="api_key", key_id="k1")
        return ALLOW


async def test_events_after_authentication_carry_the_consumer_as_user_id() -> None:
    calls: list[str] = []
    events = MemorySink()
    deny = Deny(429, "ratelimit.exceeded", "Too Many Requests")
    chain = GuardChain(
        [
            Authenticates("auth", Phase.AUTHENTICATE, calls),
            Recorder("limit", Phase.RATE_LIMIT, calls, deny),
        ],
        events,
    )
    assert await chain.run(make_request()) is deny
    assert [(e.action, e.user_id) for e in events.events] == [("ratelimit.exceeded", "acme")]


def test_every_built_in_guard_has_a_row_in_the_order_table() -> None:
    """One table orders every built-in guard; a guard left out would run last of its phase."""
    import re
    from pathlib import Path

    source = Path(__file__).resolve().parents[2] / "src" / "bastion"
    names = {
        match
        for path in source.rglob("*.py")
        for match in re.findall(r'name: ClassVar\[str\] = "([a-z_]+)"', path.read_text())
    }
    assert names
    assert sorted(names - set(GUARD_ORDER)) == []
