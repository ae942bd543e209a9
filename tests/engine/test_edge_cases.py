"""Less common paths: upgrades other than WebSocket, pipelined bodies, clients leaving early,
refused expectations, verified upstream TLS, oversized upstream heads, gauges."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from pathlib import Path
from typing import ClassVar

import httpx
import pytest

from bastion.config.types import HostPort
from bastion.engine.server import GatewayServer
from bastion.observability.events import MemorySink
from bastion.observability.traffic import TrafficStats
from bastion.pipeline import Decision, Deny, Phase, Request
from bastion.pipeline.chain import GuardChain
from bastion.pipeline.routing import Route, Router
from tests.engine.helpers import head_and_body, make_config, raw, start_gateway, status_of
from tests.engine.upstream_app import Upstream


async def test_h2c_upgrade_is_served_as_plain_http11(upstream: Upstream) -> None:
    gw = await start_gateway(make_config(upstream.url))
    request = (
        b"GET /u HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
        b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\nGET /v HTTP/1.1\r\nHost: a\r\n"
        b"Connection: close\r\n\r\n"
    )
    response = await raw(gw.port, request)
    await gw.shutdown(1)
    assert response.count(b"HTTP/1.1 200") == 2
    first = upstream.seen[0]
    assert first.header("upgrade") is None
    assert first.header("http2-settings") is None
    assert [seen.target for seen in upstream.seen] == ["/u", "/v"]


async def test_pipelined_requests_with_bodies_keep_their_bodies(upstream: Upstream) -> None:
    gw = await start_gateway(make_config(upstream.url))
    request = (
        b"POST /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
        b"POST /2 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n0\r\n\r\n"
        b"POST /3 HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nConnection: close\r\n\r\nf"
    )
    response = await raw(gw.port, request)
    await gw.shutdown(1)
    assert response.count(b"HTTP/1.1 200") == 3
    assert [(s.target, s.body) for s in upstream.seen] == [
        ("/1", b"abc"),
        ("/2", b"de"),
        ("/3", b"f"),
    ]


async def test_client_leaving_early_closes_the_upstream_connection(upstream: Upstream) -> None:
    stats = TrafficStats()
    gw = await start_gateway(
        make_config(upstream.url, timeouts={"upstream_response": 5}), stats=stats
    )
    _reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    writer.write(b"GET /slow?0.3 HTTP/1.1\r\nHost: a\r\n\r\n")
    await writer.drain()
    await asyncio.sleep(0.1)
    writer.close()  # like nginx, a client that closes is gone: its exchange is abandoned
    await asyncio.sleep(0.4)
    assert stats.in_flight == 0
    assert stats.connections_open == 0
    assert stats.snapshot().requests == {"api|GET|499": 1}
    assert gw.context.pool is not None
    assert not any(gw.context.pool.idle.values())  # never reused after an incomplete exchange
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"http://127.0.0.1:{gw.port}/x")).status_code == 200
    await gw.shutdown(1)


class DenyAll:
    name: ClassVar[str] = "deny-all"
    phase: ClassVar[Phase] = Phase.AUTHENTICATE
    requires_body: ClassVar[bool] = False

    def __init__(self) -> None:
        self.fail_open = False

    def check(self, request: Request) -> Decision:
        return Deny(401, "auth.missing_credentials", "Unauthorized")


async def test_denied_request_gets_no_100_continue(upstream: Upstream) -> None:
    gw = await start_gateway(make_config(upstream.url), guards=[DenyAll()])
    response = await raw(
        gw.port,
        b"POST /e HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n",
    )
    await gw.shutdown(1)
    assert status_of(response) == 401
    assert b"100 Continue" not in response
    fields, _ = head_and_body(response)
    assert fields["connection"] == "close"  # the unread body cannot be skipped safely
    assert upstream.seen == []


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_tls_listener_sets_https_scheme(upstream: Upstream, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    config = make_config(upstream.url)
    chain = GuardChain([Router([Route.from_config(r) for r in config.routes])], MemorySink())
    gw = GatewayServer(config=config, chain=chain, listen=HostPort("127.0.0.1", 0), ssl=context)
    await gw.start()
    async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=str(cert))) as client:
        r = await client.get(f"https://127.0.0.1:{gw.port}/x")
    await gw.shutdown(1)
    assert r.status_code == 200
    assert upstream.seen[-1].header("x-forwarded-proto") == "https"


async def test_upstream_tls_certificate_is_verified(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    reached: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        reached.append(await reader.read(100))
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    gw = await start_gateway(make_config(f"https://127.0.0.1:{port}"))
    async with httpx.AsyncClient() as client:
        r = await client.get(f"http://127.0.0.1:{gw.port}/x")
    await gw.shutdown(1)
    server.close()
    assert r.status_code == 502
    assert r.json()["code"] == "upstream.tls_failed"
    assert not any(reached)  # the self-signed upstream never saw the request


async def through_raw_upstream(answer: bytes) -> httpx.Response:
    """The gateway's response to ``GET /x`` when the upstream writes ``answer`` and closes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    gw = await start_gateway(make_config(f"http://127.0.0.1:{port}"))
    async with httpx.AsyncClient() as client:
        r = await client.get(f"http://127.0.0.1:{gw.port}/x")
    await gw.shutdown(1)
    server.close()
    return r


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(b"HTTP/1.1 200 OK\r\nX-Big: " + b"v" * 100_000 + b"\r\n\r\n", id="huge-head"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nnot-really-gzip",
            id="transfer-coding-not-chunked",
        ),
    ],
)
async def test_bad_upstream_response_is_a_502(answer: bytes) -> None:
    r = await through_raw_upstream(answer)
    assert r.status_code == 502
    assert r.json()["code"] == "upstream.bad_response"


async def test_gauges_return_to_zero(upstream: Upstream) -> None:
    stats = TrafficStats()
    gw = await start_gateway(make_config(upstream.url), stats=stats)
    async with httpx.AsyncClient() as client:
        await asyncio.gather(
            *(client.get(f"http://127.0.0.1:{gw.port}/slow?0.05") for _ in range(10))
        )
        assert stats.connections_open > 0
    await gw.shutdown(1)
    assert stats.in_flight == 0
    assert stats.connections_open == 0
    assert stats.snapshot().requests == {"api|GET|200": 10}


async def test_pipelined_request_reusing_the_upstream_connection_mid_read(
    upstream: Upstream,
) -> None:
    """The next pipelined request may take the upstream connection while the previous response's
    last read is still being handled; that read must not count against the new response."""
    gw = await start_gateway(make_config(upstream.url, limits={"max_upstream_header_bytes": 1024}))
    pipeline = b"GET /big?200000 HTTP/1.1\r\nHost: a\r\n\r\n" * 3
    pipeline += b"GET /last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    response = await raw(gw.port, pipeline)
    await gw.shutdown(1)
    assert response.count(b"HTTP/1.1 200 OK") == 4
    assert b"HTTP/1.1 502" not in response


async def test_many_pipelined_h2c_upgrades_are_parsed_iteratively(upstream: Upstream) -> None:
    gw = await start_gateway(make_config(upstream.url, limits={"max_pipelined": 1024}))
    one = b"GET /u HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
    response = await raw(
        gw.port, one * 1000 + b"GET /v HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    )
    await gw.shutdown(1)
    assert response.count(b"HTTP/1.1 200") == 1001


async def test_slow_upload_is_not_an_upstream_timeout(upstream: Upstream) -> None:
    """upstream_response counts from the end of the request: a long upload is paced by
    body_read, not cut by the wait for the response head."""
    gw = await start_gateway(
        make_config(upstream.url, timeouts={"upstream_response": 0.3, "body_read": 0.5})
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    writer.write(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\n")
    for piece in (b"ab", b"cd", b"ef"):
        await asyncio.sleep(0.2)
        writer.write(piece)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
    writer.close()
    await gw.shutdown(1)
    assert status_of(head) == 200
    assert upstream.seen[-1].body == b"abcdef"
