"""Regression: a guard's exception text (a backend URL with its password) never reaches a log
line, an event or the client."""

from __future__ import annotations

import logging
from typing import ClassVar

import orjson
import pytest

from bastion.errors import StateError
from bastion.observability.events import MemorySink
from bastion.pipeline import Deny, GuardChain, Phase, Request, problem_response
from bastion.pipeline.request import ClientAddress, Headers

SECRET = "hunter2"


class LeakyBackendGuard:
    name: ClassVar[str] = "limit"
    phase: ClassVar[Phase] = Phase.RATE_LIMIT
    requires_body: ClassVar[bool] = False

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.fail_open = False

    def check(self, request: Request) -> Deny:
        raise self.error


def request() -> Request:
    return Request(
        method="GET",
        path="/",
        query="",
        headers=Headers([]),
        client=ClientAddress("192.0.2.1", 1),
        request_id="rid",
    )


async def test_guard_exception_text_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    events = MemorySink()
    error = ConnectionError(f"redis://admin:{SECRET}@cache:6379 refused")
    chain = GuardChain([LeakyBackendGuard(error)], events)
    with caplog.at_level(logging.DEBUG):
        decision = await chain.run(request())
    assert isinstance(decision, Deny)
    body = problem_response(decision, "rid").body
    assert SECRET not in caplog.text
    assert "ConnectionError" in caplog.text
    assert SECRET not in body.decode()
    assert all(SECRET not in orjson.dumps(e.to_ecs()).decode() for e in events.events)


async def test_bastion_errors_keep_their_written_message(caplog: pytest.LogCaptureFixture) -> None:
    error = StateError("rate-limit store unreachable")
    chain = GuardChain([LeakyBackendGuard(error)], MemorySink())
    with caplog.at_level(logging.ERROR):
        await chain.run(request())
    assert "rate-limit store unreachable" in caplog.text


class LeakyHook(LeakyBackendGuard):
    def on_response(self, request: Request, status: int, headers: list[tuple[str, str]]) -> None:
        raise self.error

    def on_complete(self, request: Request, status: int, bytes_sent: int, seconds: float) -> None:
        raise self.error


def test_hook_exception_text_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    chain = GuardChain([LeakyHook(ValueError(f"token={SECRET}"))], MemorySink())
    with caplog.at_level(logging.DEBUG):
        chain.on_response(request(), 200, [])
        chain.on_complete(request(), 200, 0, 0.0)
    assert "ValueError (message withheld)" in caplog.text
    assert SECRET not in caplog.text
