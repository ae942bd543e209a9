"""Oversized request heads and slow clients (slowloris) are cut off before they cost memory or
connections: 414 for a long request line, 431 for too large or too many header fields, 408 when a
head or body does not arrive within its timeout, a silent close for a connection that sends
nothing."""

from __future__ import annotations

import asyncio

import orjson

from bastion.observability.traffic import TrafficStats
from tests.engine.helpers import (
    head_and_body,
    make_config,
    raw,
    read_until_close,
    start_gateway,
    status_of,
)
from tests.engine.upstream_app import Upstream


async def test_request_line_too_long_414(upstream: Upstream) -> None:
    gw = await start_gateway(make_config(upstream.url, limits={"max_request_line": 256}))
    response = await raw(gw.port, b"GET /" + b"a" * 400 + b" HTTP/1.1\r\nHost: a\r\n\r\n")
    await gw.shutdown(1)
    assert status_of(response) == 414
    assert upstream.seen == []


async def test_request_line_never_ending_414(upstream: Upstream) -> None:
    """An endless request line is refused as it streams in, not after it ends."""
    gw = await start_gateway(make_config(upstream.url, limits={"max_request_line": 256}))
    response = await raw(gw.port, [b"GET /" + b"a" * 200, b"b" * 200, b"c" * 200])
    await gw.shutdown(1)
    assert status_of(response) == 414


async def test_header_section_too_large_431(upstream: Upstream) -> None:
    gw = await start_gateway(make_config(upstream.url, limits={"max_header_bytes": 1024}))
    response = await raw(
        gw.port, b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"v" * 2000 + b"\r\n\r\n"
    )
    await gw.shutdown(1)
    assert status_of(response) == 431
    assert orjson.loads(head_and_body(response)[1])["code"] == "request.headers_too_large"
    assert upstream.seen == []


async def test_never_ending_header_value_431(upstream: Upstream) -> None:
    gw = await start_gateway(make_config(upstream.url, limits={"max_header_bytes": 1024}))
    pieces = [b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: "] + [b"v" * 4096] * 8
    response = await raw(gw.port, pieces)
    await gw.shutdown(1)
    assert status_of(response) == 431


async def test_too_many_header_fields_431(upstream: Upstream) -> None:
    gw = await start_gateway(make_config(upstream.url, limits={"max_headers": 10}))
    fields = b"".join(b"X-%d: v\r\n" % i for i in range(11))
    response = await raw(gw.port, b"GET / HTTP/1.1\r\nHost: a\r\n" + fields + b"\r\n")
    await gw.shutdown(1)
    assert status_of(response) == 431
    assert upstream.seen == []


async def test_slowloris_head_cut_off_by_header_read_timeout(upstream: Upstream) -> None:
    stats = TrafficStats()
    gw = await start_gateway(make_config(upstream.url, timeouts={"header_read": 0.3}), stats=stats)
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n")
    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(4):  # trickling bytes does not extend the deadline (counted from the first)
        writer.write(b"X-A: b\r\n")
        await asyncio.sleep(0.05)
    response = await read_until_close(reader, timeout=2)
    writer.close()
    await gw.shutdown(1)
    assert status_of(response) == 408
    assert loop.time() - started < 0.3 + 0.2 + 0.2
    assert stats.protocol_errors == {"request.header_timeout": 1}
    assert upstream.seen == []


async def test_silent_connection_closed_by_header_read_timeout(upstream: Upstream) -> None:
    gw = await start_gateway(make_config(upstream.url, timeouts={"header_read": 0.2}))
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    data = await asyncio.wait_for(reader.read(), 2)
    writer.close()
    await gw.shutdown(1)
    assert data == b""


async def test_slow_body_cut_off_by_body_read_timeout(upstream: Upstream) -> None:
    gw = await start_gateway(make_config(upstream.url, timeouts={"body_read": 0.2}))
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    writer.write(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nabc")
    response = await read_until_close(reader, timeout=2)
    writer.close()
    await gw.shutdown(1)
    assert status_of(response) == 408


async def test_idle_keep_alive_connection_closed(upstream: Upstream) -> None:
    gw = await start_gateway(make_config(upstream.url, timeouts={"idle": 0.2}))
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    writer.write(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
    data = await read_until_close(reader, timeout=2)
    writer.close()
    await gw.shutdown(1)
    assert status_of(data) == 200  # answered, then closed by the idle timeout (read saw EOF)
