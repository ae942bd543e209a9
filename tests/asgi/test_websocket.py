"""WebSocket handshakes through BastionMiddleware: allowed sessions pass, denied ones never
reach the app."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from bastion.asgi import BastionMiddleware
from bastion.asgi.types import Message, Receive, Scope, Send
from bastion.config import build_config
from bastion.observability.events import MemorySink
from bastion.pipeline import GuardChain
from tests.asgi.apps import collect, starlette_app
from tests.asgi.conftest import DenyPrefix, Serve


def ws_url(base: str, path: str) -> str:
    return base.replace("http://", "ws://", 1) + path


def test_allowed_websocket_session_passes_through(serve: Serve) -> None:
    mw = BastionMiddleware(
        starlette_app([]), build_config({}), chain=GuardChain([DenyPrefix("/admin")], MemorySink())
    )
    base = serve(mw)

    with connect(ws_url(base, "/ws"), open_timeout=5) as ws:
        request_id = ws.recv(timeout=5)
        ws.send("ping")
        assert ws.recv(timeout=5) == "echo:ping"
        assert ws.response is not None
        assert ws.response.headers["x-request-id"] == request_id

    assert mw.stats.snapshot().requests == {"app|GET|101": 1}


def test_denied_websocket_handshake_gets_the_problem(serve: Serve) -> None:
    sink = MemorySink()
    calls: list[str] = []
    mw = BastionMiddleware(
        starlette_app(calls), build_config({}), chain=GuardChain([DenyPrefix("/ws")], sink)
    )
    base = serve(mw)

    with pytest.raises(InvalidStatus) as denied:
        connect(ws_url(base, "/ws"), open_timeout=5)

    response = denied.value.response
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    problem = json.loads(response.body or b"{}")
    assert problem["code"] == "authz.forbidden"
    assert problem["request_id"] == response.headers["x-request-id"]
    assert sink.actions() == ["authz.forbidden"]
    assert calls == []
    assert mw.stats.snapshot().requests == {"app|GET|403": 1}


def _ws_scope(extensions: dict[str, object]) -> Scope:
    return {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "ws",
        "path": "/ws/feed",
        "raw_path": b"/ws/feed",
        "query_string": b"",
        "headers": [(b"host", b"example.test")],
        "client": ("192.0.2.10", 50000),
        "server": ("127.0.0.1", 8000),
        "subprotocols": [],
        "extensions": extensions,
    }


def _drive(mw: BastionMiddleware, scope: Scope) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    asyncio.run(mw(scope, receive, collect(sent)))
    return sent


def test_denial_without_the_denial_response_extension_closes_with_1008() -> None:
    called: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        called.append(scope)

    mw = BastionMiddleware(
        app, build_config({}), chain=GuardChain([DenyPrefix("/ws")], MemorySink())
    )

    sent = _drive(mw, _ws_scope({}))

    assert sent == [{"type": "websocket.close", "code": 1008, "reason": "authz.forbidden"}]
    assert called == []


def test_denial_response_extension_is_used_when_offered() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("the app must not run")

    mw = BastionMiddleware(
        app, build_config({}), chain=GuardChain([DenyPrefix("/ws")], MemorySink())
    )

    sent = _drive(mw, _ws_scope({"websocket.http.response": {}}))

    assert [m["type"] for m in sent] == [
        "websocket.http.response.start",
        "websocket.http.response.body",
    ]
    assert sent[0]["status"] == 403
    assert json.loads(sent[1]["body"])["code"] == "authz.forbidden"
