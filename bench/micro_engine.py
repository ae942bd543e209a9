"""Micro-benchmark of the engine's per-request Python path, without sockets.

A raw request is fed into a :class:`ClientProtocol` whose transport is a fake; the exchange is
forwarded on a pooled :class:`UpstreamConnection` whose transport is a fake too, which is then fed
an nginx-like response. What is timed is everything bastion does in Python per proxied request
(parsing callbacks, checks, header rewriting, pool, stats), not the event loop or the kernel.

    .venv/bin/python bench/micro_engine.py            # µs per request, best of 7 runs
    .venv/bin/python bench/micro_engine.py --profile  # cProfile of one run
    .venv/bin/python bench/micro_engine.py --config '{"rate_limit": {"policies": [...]}}'

``--config`` (JSON, merged into a minimal config) builds the chain the way ``bastion serve``
does, with every guard that config enables; without it the chain is the router alone.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import tempfile
import time
from typing import Any

import uvloop

from bastion.assembly import build_gateway_chain
from bastion.config.models import BastionConfig
from bastion.engine.context import EngineContext
from bastion.engine.pool import UpstreamPool
from bastion.engine.protocol import ClientProtocol
from bastion.engine.upstream import UpstreamConnection
from bastion.observability.events import NullSink
from bastion.observability.traffic import TrafficStats
from bastion.pipeline.chain import GuardChain
from bastion.pipeline.routing import Route, Router

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.24.0\r\nDate: Fri, 27 Nov 2026 21:00:00 GMT\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok"
)


class FakeTransport(asyncio.Transport):
    def __init__(self, peer: tuple[str, int]) -> None:
        super().__init__()
        self.peer = peer
        self.sent: list[bytes] = []
        self.closing = False

    def write(self, data: Any) -> None:
        self.sent.append(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.peer if name == "peername" else default

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def can_write_eof(self) -> bool:
        return True


def setup(
    loop: asyncio.AbstractEventLoop, extra: dict[str, Any] | None = None
) -> tuple[ClientProtocol, FakeTransport, FakeTransport]:
    data: dict[str, Any] = {
        "routes": [{"name": "api", "upstream": "http://127.0.0.1:9000"}],
        "events": {"sink": "none"},
        "admin": {"enabled": False},
        "state_dir": tempfile.mkdtemp(prefix="bastion-micro-"),
    }
    config = BastionConfig.model_validate({**data, **(extra or {})})
    routes = [Route.from_config(r) for r in config.routes]
    if extra is None:
        chain = GuardChain([Router(routes)], NullSink())
    else:
        chain = build_gateway_chain(config, NullSink())
        loop.run_until_complete(chain.start())
    client, client_transport, _, up_transport = wire(config, chain, loop)
    return client, client_transport, up_transport


def wire(
    config: BastionConfig, chain: GuardChain, loop: asyncio.AbstractEventLoop
) -> tuple[ClientProtocol, FakeTransport, UpstreamConnection, FakeTransport]:
    """An engine context for ``chain`` with one client connection and one pooled upstream
    connection of the first route, both on fake transports."""
    ctx = EngineContext(config=config, chain=chain, stats=TrafficStats(), loop=loop, scheme="http")
    pool = ctx.pool = UpstreamPool(ctx)
    upstream_url = Route.from_config(config.routes[0]).upstream
    assert upstream_url is not None
    key = (upstream_url.scheme, upstream_url.host, upstream_url.port)
    up = UpstreamConnection(pool, key)
    up_transport = FakeTransport(("127.0.0.1", 9000))
    up.connection_made(up_transport)
    pool.counts[key] = 1
    pool.release(up)
    client = ClientProtocol(ctx)
    client_transport = FakeTransport(("127.0.0.1", 40000))
    client.connection_made(client_transport)
    return client, client_transport, up, up_transport


def run(n: int, loop: asyncio.AbstractEventLoop, extra: dict[str, Any] | None = None) -> float:
    client, client_transport, up_transport = setup(loop, extra)
    pool = client.ctx.pool
    assert pool is not None
    up = next(iter(pool.idle.values()))[0]
    return exchanges(client, client_transport, up, up_transport, n)


def exchanges(
    client: ClientProtocol,
    client_transport: FakeTransport,
    up: UpstreamConnection,
    up_transport: FakeTransport,
    n: int,
    request: bytes = REQUEST,
    response: bytes = RESPONSE,
) -> float:
    """µs per exchange: ``request`` fed to the client connection and ``response`` to the pooled
    upstream one, ``n`` times (what every micro benchmark here times)."""
    feed_client, feed_up = client.data_received, up.data_received
    sent_up, sent_client = up_transport.sent, client_transport.sent
    start = time.perf_counter()
    for _ in range(n):
        feed_client(request)
        feed_up(response)
        sent_up.clear()
        sent_client.clear()
    return (time.perf_counter() - start) / n * 1e6


def show(loop: asyncio.AbstractEventLoop) -> None:
    client, client_transport, up_transport = setup(loop)
    pool = client.ctx.pool
    assert pool is not None
    up: UpstreamConnection = next(iter(pool.idle.values()))[0]
    client.data_received(REQUEST)
    up.data_received(RESPONSE)
    print(b"".join(up_transport.sent).decode())
    print(b"".join(client_transport.sent).decode())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--show", action="store_true", help="print one exchange's bytes")
    parser.add_argument("--config", help="JSON merged into the config; the chain it enables")
    args = parser.parse_args()
    extra = json.loads(args.config) if args.config else None
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    if args.show:
        show(loop)
        return
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(run, args.n, loop, extra)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        return
    results = sorted(run(args.n, loop, extra) for _ in range(args.runs))
    median = results[len(results) // 2]
    print(f"{results[0]:.2f} us/request (best of {args.runs}; median {median:.2f})")


if __name__ == "__main__":
    main()
