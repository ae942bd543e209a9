"""Rate limiting end to end: the real engine on a loopback port, a real upstream, raw HTTP."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest
import uvloop

from bastion.asgi import BastionMiddleware
from bastion.config import build_config
from bastion.config.types import HostPort
from bastion.engine.server import GatewayServer
from bastion.observability.events import MemorySink
from bastion.pipeline.chain import GuardChain
from bastion.pipeline.routing import Route, Router
from bastion.ratelimit.assembly import ratelimit_guards
from tests.asgi.apps import starlette_app
from tests.asgi.conftest import Serve, _ServerThread
from tests.engine.helpers import head_and_body, make_config, raw, status_of
from tests.engine.upstream_app import Upstream, start_upstream


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    return {"uvloop": uvloop.new_event_loop}


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    up = await start_upstream()
    yield up
    assert up.server is not None
    up.server.close()


async def gateway(upstream: Upstream, **overrides: Any) -> tuple[GatewayServer, MemorySink]:
    config = make_config(upstream.url, **overrides)
    events = MemorySink()
    router = Router([Route.from_config(route) for route in config.routes])
    chain = GuardChain([router, *ratelimit_guards(config, events)], events)
    server = GatewayServer(config=config, chain=chain, listen=HostPort("127.0.0.1", 0))
    await server.start()
    return server, events


def get(path: str = "/items", headers: dict[str, str] | None = None) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: api.test", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


PER_IP = {"policies": [{"name": "per-ip", "rate": "3/minute"}]}


async def test_a_burst_gets_429_with_retry_after_ratelimit_fields_and_a_problem(
    upstream: Upstream,
) -> None:
    server, events = await gateway(upstream, rate_limit=PER_IP)
    try:
        answers = [await raw(server.port, get()) for _ in range(4)]
    finally:
        await server.shutdown(1.0)
    assert [status_of(a) for a in answers] == [200, 200, 200, 429]
    first, _ = head_and_body(answers[0])
    assert first["ratelimit-policy"] == '"per-ip";q=3;w=60'
    assert first["ratelimit"] == '"per-ip";r=2;t=20'
    head, body = head_and_body(answers[3])
    assert head["content-type"] == "application/problem+json"
    assert int(head["retry-after"]) >= 20
    assert head["ratelimit"] == f'"per-ip";r=0;t={head["retry-after"]}'
    problem = orjson.loads(body)
    assert problem["code"] == "ratelimit.exceeded"
    assert problem["violated-policies"] == ["per-ip"]
    assert problem["request_id"] == head["x-request-id"]
    assert len(upstream.seen) == 3  # the refused request never reached the upstream
    assert [e.action for e in events.events] == ["ratelimit.exceeded"]


async def test_spoofed_forwarded_headers_never_reset_a_limit(upstream: Upstream) -> None:
    server, _ = await gateway(upstream, rate_limit=PER_IP)
    try:
        answers = [
            await raw(
                server.port,
                get(headers={"X-Forwarded-For": f"203.0.113.{n}", "Forwarded": f"for=10.0.0.{n}"}),
            )
            for n in range(6)
        ]
    finally:
        await server.shutdown(1.0)
    assert [status_of(a) for a in answers] == [200, 200, 200, 429, 429, 429]


async def test_clients_behind_a_trusted_proxy_are_counted_apart(upstream: Upstream) -> None:
    server, _ = await gateway(
        upstream, rate_limit=PER_IP, proxy={"trusted_proxies": ["127.0.0.1/32"]}
    )
    try:
        alice = [
            await raw(server.port, get(headers={"X-Forwarded-For": "203.0.113.1"}))
            for _ in range(4)
        ]
        bob = await raw(server.port, get(headers={"X-Forwarded-For": "203.0.113.2"}))
    finally:
        await server.shutdown(1.0)
    assert [status_of(a) for a in alice] == [200, 200, 200, 429]
    assert status_of(bob) == 200


async def test_login_failures_lock_out_before_the_upstream_sees_more(upstream: Upstream) -> None:
    routes = [
        {"name": "signin", "upstream": upstream.url, "path_prefix": "/status/401", "login": True},
        {"name": "api", "upstream": upstream.url},
    ]
    server, events = await gateway(
        upstream, routes=routes, rate_limit={"login": {"max_failures": 3, "lockout": "5s"}}
    )
    credentials = base64.b64encode(b"svc:wrong-password").decode()
    try:
        answers = [
            await raw(server.port, get("/status/401", {"Authorization": f"Basic {credentials}"}))
            for _ in range(5)
        ]
        other = await raw(server.port, get("/items"))
    finally:
        await server.shutdown(1.0)
    assert [status_of(a) for a in answers] == [401, 401, 401, 429, 429]
    head, body = head_and_body(answers[3])
    assert head["retry-after"] == "5"
    assert orjson.loads(body)["code"] == "ratelimit.login_locked"
    assert status_of(other) == 200  # other routes are not login routes
    assert len([s for s in upstream.seen if s.target == "/status/401"]) == 3
    lockouts = [e for e in events.events if e.action == "ratelimit.lockout"]
    assert {e.fields["locked"] for e in lockouts} == {"ip", "acct"}
    # the password never appears in an event
    assert all(b"wrong-password" not in orjson.dumps(e.to_ecs()) for e in events.events)


async def test_concurrency_limit_refuses_the_request_over_it(upstream: Upstream) -> None:
    server, _ = await gateway(upstream, rate_limit={"concurrency": {"max_in_flight": 1}})
    try:
        slow = asyncio.ensure_future(raw(server.port, get("/slow?0.3")))
        await asyncio.sleep(0.1)
        refused = await raw(server.port, get("/items"))
        done = await slow
        after = await raw(server.port, get("/items"))
    finally:
        await server.shutdown(1.0)
    assert status_of(done) == 200
    assert status_of(refused) == 429
    assert orjson.loads(head_and_body(refused)[1])["code"] == "ratelimit.concurrency"
    assert status_of(after) == 200  # the slot was freed when the slow response completed


# -- the same guard inside an ASGI app ---------------------------------------------------------


@pytest.fixture
def served() -> Iterator[Serve]:
    servers: list[_ServerThread] = []

    def start(app: Any, **options: Any) -> str:
        server = _ServerThread(app, **options)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


def test_middleware_answers_429_with_the_same_headers(served: Serve) -> None:
    calls: list[str] = []
    config = build_config({"rate_limit": PER_IP, "events": {"sink": "none"}})
    base = served(BastionMiddleware(starlette_app(calls), config))
    with httpx.Client(base_url=base) as client:
        answers = [client.get("/echo") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[0].headers["ratelimit"] == '"per-ip";r=2;t=20'
    assert answers[3].headers["retry-after"] == "20"
    assert answers[3].json()["code"] == "ratelimit.exceeded"
    assert len(calls) == 3
