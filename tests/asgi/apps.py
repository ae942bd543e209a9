"""The apps the middleware tests put bastion in front of: a Starlette app and raw ASGI callables."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from bastion.asgi import request_view
from bastion.asgi.types import Message, Receive, Scope, Send
from bastion.pipeline import StateKey

SECRET_TEXT = "db-password=hunter2"
MARK: StateKey[str] = StateKey("test.mark")


def starlette_app(calls: list[str], *, debug: bool = False) -> Starlette:
    """Echoes what it received; ``calls`` records every path the app itself handled."""

    async def echo(request: StarletteRequest) -> Response:
        calls.append(request.url.path)
        body = await request.body()
        return JSONResponse(
            {
                "method": request.method,
                "raw_path": request.scope["raw_path"].decode("latin-1"),
                "query": request.scope["query_string"].decode("latin-1"),
                "headers": [
                    [k.decode("latin-1"), v.decode("latin-1")] for k, v in request.headers.raw
                ],
                "body_hex": body.hex(),
            }
        )

    async def whoami(request: StarletteRequest) -> Response:
        calls.append(request.url.path)
        view = request_view(request.scope)
        assert view is not None
        return JSONResponse(
            {
                "client": view.client.ip,
                "peer": view.peer.ip,
                "scheme": view.scheme,
                "host": view.host,
                "request_id": view.request_id,
                "marks": view.state.get(MARK, ""),
            }
        )

    async def banner(request: StarletteRequest) -> Response:
        return PlainTextResponse(
            "hi", headers={"server": "gunicorn/19.0", "x-powered-by": "PHP/5.4"}
        )

    async def own_headers(request: StarletteRequest) -> Response:
        return PlainTextResponse(
            "hi", headers={"x-content-type-options": "nosniff", "x-request-id": "app-chosen"}
        )

    async def fail(request: StarletteRequest) -> Response:
        calls.append(request.url.path)
        return PlainTextResponse(
            f"Traceback ... {SECRET_TEXT}", status_code=503, headers={"retry-after": "7"}
        )

    async def boom(request: StarletteRequest) -> Response:
        calls.append(request.url.path)
        raise RuntimeError(f"exploded with {SECRET_TEXT}")

    async def ws_echo(websocket: WebSocket) -> None:
        await websocket.accept()
        view = request_view(websocket.scope)
        await websocket.send_text(view.request_id if view is not None else "no view")
        text = await websocket.receive_text()
        await websocket.send_text(f"echo:{text}")
        await websocket.close()

    return Starlette(
        debug=debug,
        routes=[
            Route("/whoami", whoami),
            Route("/banner", banner),
            Route("/own-headers", own_headers),
            Route("/fail", fail),
            Route("/boom", boom),
            Route("/{path:path}", echo, methods=["GET", "POST", "PUT", "HEAD"]),
            WebSocketRoute("/ws", ws_echo),
        ],
    )


async def raises_before_start(scope: Scope, receive: Receive, send: Send) -> None:
    """A bare ASGI app that fails before answering (no framework error handler in between)."""
    raise ValueError(f"lookup failed: {SECRET_TEXT}")


async def raises_mid_body(scope: Scope, receive: Receive, send: Send) -> None:
    """Starts a 200 promising 100 bytes, sends 10, then fails."""
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100")]}
    )
    await send({"type": "http.response.body", "body": b"0123456789", "more_body": True})
    raise ValueError("stream broke")


async def returns_nothing(scope: Scope, receive: Receive, send: Send) -> None:
    """Returns without answering at all."""


def collect(messages: list[Message]) -> Any:
    async def send(message: Message) -> None:
        messages.append(message)

    return send
