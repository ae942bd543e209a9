"""Rate limiting on Redis through the guards: the real shared Redis, private servers that a test
stops and starts again, and gateway processes that share one limit."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis

from bastion.config.loader import build_config
from bastion.config.models import BastionConfig
from bastion.observability.events import MemorySink
from bastion.pipeline.chain import GuardChain
from bastion.pipeline.decisions import Allow, Decision, Deny
from bastion.pipeline.request import ClientAddress, Headers, Request
from bastion.pipeline.routing import Route, Router
from bastion.ratelimit.assembly import ratelimit_guards
from tests.ports import free_port
from tests.services.redis_service import RedisServer

UPSTREAM = "http://127.0.0.1:9"


def config(redis_url: str, prefix: str, **rate_limit: Any) -> BastionConfig:
    return build_config(
        {
            "routes": [{"name": "api", "upstream": UPSTREAM}],
            "redis": {"url": redis_url, "key_prefix": prefix, "command_timeout": "1s"},
            "rate_limit": {"storage": "redis", **rate_limit},
        }
    )


def request(path: str = "/x", ip: str = "198.51.100.7") -> Request:
    return Request(
        method="GET",
        path=path,
        query="",
        headers=Headers([(b"host", b"api.test")]),
        client=ClientAddress(ip, 40000),
        request_id="rid",
    )


@pytest.fixture
async def chains() -> AsyncIterator[Callable[[BastionConfig], Any]]:
    """``await make(config) -> (chain, events)``; every chain is started, and closed after."""
    made: list[GuardChain] = []

    async def make(cfg: BastionConfig) -> tuple[GuardChain, MemorySink]:
        events = MemorySink()
        router = Router([Route.from_config(route) for route in cfg.routes])
        chain = GuardChain([router, *ratelimit_guards(cfg, events)], events)
        await chain.start()
        made.append(chain)
        return chain, events

    yield make
    for chain in made:
        await chain.close()


PER_IP = [{"name": "per-ip", "rate": "3/minute"}]


async def test_redis_limits_give_the_same_answers_as_memory(
    redis_url: str, redis_prefix: str, chains: Any
) -> None:
    chain, events = await chains(config(redis_url, redis_prefix, policies=PER_IP))
    decisions = [await chain.run(request()) for _ in range(4)]
    assert [type(d) for d in decisions] == [Allow, Allow, Allow, Deny]
    assert dict(decisions[0].headers)["ratelimit"] == '"per-ip";r=2;t=20'
    refused = decisions[3]
    assert isinstance(refused, Deny)
    assert refused.status == 429
    assert 19 <= int(dict(refused.headers)["retry-after"]) <= 20
    assert isinstance(await chain.run(request(ip="198.51.100.8")), Allow)
    assert events.actions() == ["ratelimit.exceeded"]


async def test_two_chains_on_one_redis_share_the_limit(
    redis_url: str, redis_prefix: str, chains: Any
) -> None:
    cfg = config(redis_url, redis_prefix, policies=PER_IP)
    first, _ = await chains(cfg)
    second, _ = await chains(cfg)
    decisions = [await (first if n % 2 else second).run(request()) for n in range(6)]
    assert [isinstance(d, Allow) for d in decisions] == [True, True, True, False, False, False]


async def test_login_lockout_is_shared(redis_url: str, redis_prefix: str, chains: Any) -> None:
    cfg = config(redis_url, redis_prefix, login={"max_failures": 2, "lockout": "30s"})
    first, _ = await chains(cfg)
    second, _ = await chains(cfg)
    for chain in (first, second):
        req = request("/oauth/token")
        assert isinstance(await chain.run(req), Allow)
        chain.on_complete(req, 401, 0, 0.0)
    for _ in range(50):  # counting runs off the response path
        if isinstance(await second.run(request("/oauth/token")), Deny):
            break
        await asyncio.sleep(0.01)
    locked = await first.run(request("/oauth/token"))
    assert isinstance(locked, Deny)
    assert locked.code == "ratelimit.login_locked"


# -- Redis going away and coming back ------------------------------------------------------------


async def outage(
    chains: Any, server: RedisServer, policy: str, prefix: str = "t:"
) -> tuple[list[Decision], list[Decision], list[Decision], MemorySink]:
    cfg = config(server.url, prefix, policies=PER_IP, on_backend_failure=policy)
    chain, events = await chains(cfg)
    before = [await chain.run(request()) for _ in range(2)]
    server.stop()
    during = [await chain.run(request()) for _ in range(5)]
    server.start()
    after: list[Decision] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the client reconnects in the background
        decision = await chain.run(request(ip="198.51.100.99"))
        if isinstance(decision, Allow) or decision.status != 503:
            after.append(decision)
            break
        await asyncio.sleep(0.05)
    return before, during, after, events


async def test_redis_down_fails_closed_then_recovers_without_restart(
    redis_server_factory: Callable[..., RedisServer], chains: Any
) -> None:
    server = redis_server_factory()
    before, during, after, events = await outage(chains, server, "closed")
    assert all(isinstance(d, Allow) for d in before)
    assert all(isinstance(d, Deny) and d.status == 503 for d in during)
    assert all(dict(d.headers)["retry-after"] == "1" for d in during)
    assert all(d.code == "guard.unavailable" for d in during if isinstance(d, Deny))
    assert len(after) == 1
    assert isinstance(after[0], Allow)
    actions = events.actions()
    assert actions.count("ratelimit.backend_unavailable") == 1
    assert actions.count("ratelimit.backend_recovered") == 1


async def test_redis_down_fails_open_by_choice(
    redis_server_factory: Callable[..., RedisServer], chains: Any
) -> None:
    server = redis_server_factory()
    _, during, after, events = await outage(chains, server, "open")
    assert all(isinstance(d, Allow) for d in during)  # 2 + 5 > 3: no limit while down
    assert isinstance(after[0], Allow)
    assert events.actions().count("ratelimit.backend_unavailable") == 1


async def test_redis_down_counts_locally_by_choice(
    redis_server_factory: Callable[..., RedisServer], chains: Any
) -> None:
    server = redis_server_factory()
    _, during, _, _ = await outage(chains, server, "local")
    # the local limiter starts empty: 3 admitted, then refused, while Redis is gone
    assert [isinstance(d, Allow) for d in during] == [True, True, True, False, False]
    assert all(d.status == 429 for d in during[3:] if isinstance(d, Deny))


# -- exactness across gateway processes ------------------------------------------------------------


LIMIT = 50


def start_gateway(config_path: Path, port: int) -> subprocess.Popen[bytes]:
    bastion = Path(sys.executable).with_name("bastion")
    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen(
        [str(bastion), "serve", "--config", str(config_path), "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env=env,
    )


@pytest.fixture
def three_gateways(redis_url: str, redis_prefix: str, tmp_path: Path) -> Iterator[list[int]]:
    upstream_port = free_port()
    upstream = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(upstream_port), "--bind", "127.0.0.1"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    ports = [free_port() for _ in range(3)]
    cfg = {
        "routes": [{"name": "api", "upstream": f"http://127.0.0.1:{upstream_port}"}],
        "redis": {"url": redis_url, "key_prefix": redis_prefix},
        "rate_limit": {
            "storage": "redis",
            "policies": [{"name": "shared", "rate": f"{LIMIT}/hour", "key": []}],
        },
        "admin": {"enabled": False},
        "events": {"sink": "none"},
    }
    processes = []
    try:
        for n, port in enumerate(ports):
            path = tmp_path / f"gateway-{n}.json"
            path.write_text(orjson.dumps({**cfg, "state_dir": str(tmp_path / f"s{n}")}).decode())
            processes.append(start_gateway(path, port))
        deadline = time.monotonic() + 20
        for port in ports:
            while True:
                try:
                    httpx.get(f"http://127.0.0.1:{port}/readyz-probe", timeout=0.5)
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("gateway did not start") from None
                    time.sleep(0.05)
        # the probes above spent quota: reset the shared counter before the burst
        client = redis.Redis.from_url(redis_url)
        for key in client.scan_iter(match=f"{redis_prefix}*"):
            client.delete(key)
        client.close()
        yield ports
    finally:
        for process in [*processes, upstream]:
            process.terminate()
        for process in [*processes, upstream]:
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()


async def test_three_gateways_never_admit_more_than_the_limit(three_gateways: list[int]) -> None:
    """10x the limit, concurrently, spread over three gateway processes sharing Redis."""
    total = LIMIT * 10
    limits = httpx.Limits(max_connections=30)
    async with httpx.AsyncClient(timeout=10, limits=limits) as client:

        async def one(n: int) -> int:
            port = three_gateways[n % 3]
            response = await client.get(f"http://127.0.0.1:{port}/")
            return response.status_code

        statuses = await asyncio.gather(*(one(n) for n in range(total)))
    admitted = statuses.count(200)
    refused = statuses.count(429)
    print(f"\ncross-process accuracy: admitted {admitted} / limit {LIMIT} = {admitted / LIMIT:.3f}")
    assert admitted + refused == total
    assert admitted == LIMIT


def test_middleware_limits_on_redis(redis_url: str, redis_prefix: str) -> None:
    """The middleware starts the guards' Redis connection in the app's loop on first use."""
    from bastion.asgi import BastionMiddleware
    from tests.asgi.apps import starlette_app
    from tests.asgi.conftest import _ServerThread

    calls: list[str] = []
    cfg = build_config(
        {
            "redis": {"url": redis_url, "key_prefix": redis_prefix},
            "rate_limit": {"storage": "redis", "policies": PER_IP},
            "events": {"sink": "none"},
        }
    )
    server = _ServerThread(BastionMiddleware(starlette_app(calls), cfg))
    base = server.start()
    try:
        with httpx.Client(base_url=base) as client:
            statuses = [client.get("/echo").status_code for _ in range(4)]
    finally:
        server.stop()
    assert statuses == [200, 200, 200, 429]
    assert len(calls) == 3
