"""WebSocket relay after the chain allowed the handshake, and graceful shutdown."""

from __future__ import annotations

import asyncio
from typing import ClassVar

import httpx
import pytest
import websockets

from bastion.pipeline import ALLOW, Decision, Deny, Phase, Request
from tests.engine.helpers import make_config, start_gateway
from tests.engine.upstream_app import Upstream


class OnlyWithToken:
    name: ClassVar[str] = "token"
    phase: ClassVar[Phase] = Phase.AUTHENTICATE
    requires_body: ClassVar[bool] = False

    def __init__(self) -> None:
        self.fail_open = False

    def check(self, request: Request) -> Decision:
        if "token=ok" in request.query:
            return ALLOW
        return Deny(401, "auth.missing_credentials", "Unauthorized")


async def _echo(ws: websockets.ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


async def test_websocket_relayed_both_ways() -> None:
    async with websockets.serve(_echo, "127.0.0.1", 0) as ws_server:
        port = next(iter(ws_server.sockets)).getsockname()[1]
        gw = await start_gateway(make_config(f"http://127.0.0.1:{port}"), guards=[OnlyWithToken()])
        async with websockets.connect(f"ws://127.0.0.1:{gw.port}/ws?token=ok") as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
            await ws.send(b"\x00" * 200_000)
            assert await ws.recv() == b"\x00" * 200_000
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(f"ws://127.0.0.1:{gw.port}/ws"):
                pass
        assert refused.value.response.status_code == 401
        await gw.shutdown(1)


async def test_graceful_shutdown_finishes_in_flight_and_refuses_new(upstream: Upstream) -> None:
    gw = await start_gateway(make_config(upstream.url))
    port = gw.port
    async with httpx.AsyncClient() as client:
        in_flight = asyncio.create_task(client.get(f"http://127.0.0.1:{port}/slow?0.3"))
        await asyncio.sleep(0.1)
        shutdown = asyncio.create_task(gw.shutdown(2))
        await asyncio.sleep(0.05)
        with pytest.raises(httpx.ConnectError):
            await httpx.AsyncClient().get(f"http://127.0.0.1:{port}/x")
        r = await in_flight
        assert r.status_code == 200
        assert r.text == "slow"
        assert r.headers["connection"] == "close"
        await shutdown


async def test_shutdown_cuts_what_exceeds_grace(upstream: Upstream) -> None:
    gw = await start_gateway(make_config(upstream.url, timeouts={"upstream_response": 5}))
    async with httpx.AsyncClient() as client:
        in_flight = asyncio.create_task(client.get(f"http://127.0.0.1:{gw.port}/slow?3"))
        await asyncio.sleep(0.1)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await gw.shutdown(0.2)
        assert loop.time() - started < 1
        with pytest.raises(httpx.HTTPError):
            await in_flight
