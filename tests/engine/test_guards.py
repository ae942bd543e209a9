"""The guard chain inside the engine: denials, async guards, bodies on request, hooks, endpoints."""

from __future__ import annotations

import asyncio
from typing import ClassVar

import httpx

from bastion.pipeline import (
    ALLOW,
    Allow,
    Decision,
    Deny,
    FunctionEndpoint,
    Phase,
    Request,
    Response,
)
from bastion.pipeline.routing import Route
from tests.engine.helpers import make_config, raw, start_gateway, status_of
from tests.engine.upstream_app import Upstream


class BodyGuard:
    name: ClassVar[str] = "body-guard"
    phase: ClassVar[Phase] = Phase.VALIDATE
    requires_body: ClassVar[bool] = True

    def __init__(self) -> None:
        self.fail_open = False
        self.bodies: list[bytes | None] = []

    def check(self, request: Request) -> Decision:
        self.bodies.append(request.body)
        if request.body and b"evil" in request.body:
            return Deny(422, "validation.body_invalid", "Unprocessable Content", "Bad body.")
        return Allow(headers=(("ratelimit", "limit=10"),))


class SlowGuard:
    name: ClassVar[str] = "slow-guard"
    phase: ClassVar[Phase] = Phase.AUTHENTICATE
    requires_body: ClassVar[bool] = False

    def __init__(self) -> None:
        self.fail_open = False

    async def check(self, request: Request) -> Decision:
        await asyncio.sleep(0.01)
        if request.headers.get("authorization") != "Bearer ok":
            return Deny(
                401,
                "auth.missing_credentials",
                "Unauthorized",
                headers=(("www-authenticate", "Bearer"),),
            )
        return ALLOW


class Hooks:
    name: ClassVar[str] = "hooks"
    phase: ClassVar[Phase] = Phase.RESPOND
    requires_body: ClassVar[bool] = False

    def __init__(self) -> None:
        self.fail_open = False
        self.completed: list[tuple[int, int]] = []

    def check(self, request: Request) -> Decision:
        return ALLOW

    def on_response(self, request: Request, status: int, headers: list[tuple[str, str]]) -> None:
        headers.append(("strict-transport-security", "max-age=63072000"))

    def on_complete(self, request: Request, status: int, bytes_sent: int, seconds: float) -> None:
        self.completed.append((status, bytes_sent))


async def test_body_guard_sees_body_and_upstream_gets_it(upstream: Upstream) -> None:
    guard = BodyGuard()
    gw = await start_gateway(make_config(upstream.url), guards=[guard])
    async with httpx.AsyncClient() as client:
        r = await client.post(f"http://127.0.0.1:{gw.port}/p", content=b"hello")
        assert r.status_code == 200
        assert r.headers["ratelimit"] == "limit=10"
        chunks = iter([b"he", b"llo", b"!"])

        async def gen():  # type: ignore[no-untyped-def]
            for c in chunks:
                yield c

        r = await client.post(f"http://127.0.0.1:{gw.port}/p", content=gen())
        assert r.status_code == 200
        r = await client.post(f"http://127.0.0.1:{gw.port}/p", content=b"evil")
        assert r.status_code == 422
    await gw.shutdown(1)
    assert guard.bodies == [b"hello", b"hello!", b"evil"]
    assert upstream.seen[0].body == b"hello"
    assert upstream.seen[1].body == b"hello!"
    assert upstream.seen[1].header("content-length") == "6"
    assert len(upstream.seen) == 2


async def test_body_too_large_413_when_guard_requires_body(upstream: Upstream) -> None:
    gw = await start_gateway(
        make_config(upstream.url, limits={"max_body_bytes": 1000}), guards=[BodyGuard()]
    )
    response = await raw(
        gw.port, b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000
    )
    chunked = await raw(
        gw.port,
        b"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"400\r\n"
        + b"x" * 1024
        + b"\r\n0\r\n\r\n",
    )
    await gw.shutdown(1)
    assert status_of(response) == 413
    assert b"request.body_too_large" in response
    assert status_of(chunked) == 413
    assert upstream.seen == []


async def test_async_guard_denies_and_allows(upstream: Upstream) -> None:
    gw = await start_gateway(make_config(upstream.url), guards=[SlowGuard()])
    async with httpx.AsyncClient() as client:
        r = await client.get(f"http://127.0.0.1:{gw.port}/x")
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
        assert r.json()["code"] == "auth.missing_credentials"
        r = await client.get(
            f"http://127.0.0.1:{gw.port}/x", headers={"authorization": "Bearer ok"}
        )
        assert r.status_code == 200
    await gw.shutdown(1)
    assert len(upstream.seen) == 1


async def test_response_and_completion_hooks(upstream: Upstream) -> None:
    hooks = Hooks()
    gw = await start_gateway(make_config(upstream.url), guards=[hooks])
    async with httpx.AsyncClient() as client:
        r = await client.get(f"http://127.0.0.1:{gw.port}/hop")
    await gw.shutdown(1)
    assert r.headers["strict-transport-security"] == "max-age=63072000"
    assert "x-powered-by" not in r.headers
    assert hooks.completed
    assert hooks.completed[0][0] == 200


async def test_unknown_route_404(upstream: Upstream) -> None:
    config = make_config(
        upstream.url, routes=[{"name": "v1", "upstream": upstream.url, "path_prefix": "/v1"}]
    )
    gw = await start_gateway(config)
    async with httpx.AsyncClient() as client:
        r = await client.get(f"http://127.0.0.1:{gw.port}/other")
        assert r.status_code == 404
        assert r.json()["code"] == "route.not_found"
        r = await client.get(f"http://127.0.0.1:{gw.port}/v1/x")
        assert r.status_code == 200
    await gw.shutdown(1)


async def test_strip_prefix_and_preserve_host(upstream: Upstream) -> None:
    routes = [
        {
            "name": "v1",
            "upstream": upstream.url + "/base",
            "path_prefix": "/v1",
            "strip_prefix": True,
        },
        {"name": "v2", "upstream": upstream.url, "path_prefix": "/v2", "preserve_host": True},
    ]
    gw = await start_gateway(make_config(upstream.url, routes=routes))
    async with httpx.AsyncClient() as client:
        await client.get(f"http://127.0.0.1:{gw.port}/v1/items?a=1")
        await client.get(f"http://127.0.0.1:{gw.port}/v2/items", headers={"host": "api.example"})
    await gw.shutdown(1)
    assert upstream.seen[0].target == "/base/items?a=1"
    assert upstream.seen[1].header("host") == "api.example"


async def test_local_endpoint_served_by_engine() -> None:
    async def health(request: Request) -> Response:
        return Response(200, (("content-type", "application/json"),), b'{"status":"ok"}')

    async def echo(request: Request) -> Response:
        return Response(200, (), request.body or b"")

    routes = [
        Route(name="health", path_prefix="/healthz", endpoint=FunctionEndpoint(health)),
        Route(
            name="echo", path_prefix="/echo", endpoint=FunctionEndpoint(echo, requires_body=True)
        ),
    ]
    gw = await start_gateway(make_config("http://127.0.0.1:9"), routes=routes)
    async with httpx.AsyncClient() as client:
        r = await client.get(f"http://127.0.0.1:{gw.port}/healthz")
        assert r.json() == {"status": "ok"}
        assert r.headers["x-content-type-options"] == "nosniff"
        r = await client.post(f"http://127.0.0.1:{gw.port}/echo", content=b"body!")
        assert r.content == b"body!"
        r = await client.get(f"http://127.0.0.1:{gw.port}/nothing")
        assert r.status_code == 404
    await gw.shutdown(1)
    assert gw.stats.snapshot().requests["health|GET|200"] == 1


async def test_many_pipelined_denials_answered_in_order(upstream: Upstream) -> None:
    """Denials complete synchronously; a long pipeline of them must not nest without bound."""
    config = make_config(upstream.url, limits={"max_pipelined": 1024})
    gw = await start_gateway(config, guards=[BodyGuard()])
    evil = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nevil" * 600
    denied = await raw(gw.port, evil + b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    await gw.shutdown(1)
    assert denied.count(b"HTTP/1.1 422") == 600
    assert denied.count(b"HTTP/1.1 200") == 1
