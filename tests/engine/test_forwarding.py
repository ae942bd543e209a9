"""Forwarding through the real engine: headers rewritten at the boundary, ids, keep-alive."""

from __future__ import annotations

import asyncio

import httpx
import orjson

from bastion.observability.traffic import TrafficStats
from tests.engine.helpers import head_and_body, make_config, raw, start_gateway, status_of
from tests.engine.upstream_app import Upstream


async def test_get_reaches_upstream_with_query_and_rewritten_host(upstream: Upstream) -> None:
    gw = await start_gateway(make_config(upstream.url))
    async with httpx.AsyncClient() as client:
        r = await client.get(f"http://127.0.0.1:{gw.port}/hello?x=1&y=2")
    assert r.status_code == 200
    seen = upstream.seen[-1]
    assert seen.target == "/hello?x=1&y=2"
    assert seen.header("host") == f"127.0.0.1:{upstream.port}"
    assert seen.header("x-forwarded-host") == f"127.0.0.1:{gw.port}"
    await gw.shutdown(1)


async def test_hop_by_hop_request_headers_are_removed(upstream: Upstream) -> None:
    gw = await start_gateway(make_config(upstream.url))
    request = (
        b"GET /h HTTP/1.1\r\nHost: api\r\nConnection: x-secret, close\r\nX-Secret: 1\r\n"
        b"Keep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\n"
        b"Trailer: x-t\r\nX-Kept: yes\r\n\r\n"
    )
    response = await raw(gw.port, request)
    assert status_of(response) == 200
    names = {name for name, _ in upstream.seen[-1].headers}
    for hop in ("connection", "x-secret", "keep-alive", "te", "proxy-authorization", "trailer"):
        assert hop not in names
    assert upstream.seen[-1].header("x-kept") == "yes"
    await gw.shutdown(1)


async def test_hop_by_hop_and_identity_response_headers_are_removed(upstream: Upstream) -> None:
    gw = await start_gateway(make_config(upstream.url))
    response = await raw(gw.port, b"GET /hop HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    fields, body = head_and_body(response)
    assert body == b"ok"
    for gone in ("x-private", "keep-alive", "x-powered-by", "server"):
        assert gone not in fields
    assert fields["x-kept"] == "yes"
    assert fields["x-content-type-options"] == "nosniff"
    assert fields["x-request-id"]
    await gw.shutdown(1)


async def test_server_header_sent_only_when_configured(upstream: Upstream) -> None:
    gw = await start_gateway(make_config(upstream.url, responses={"server_header": "bastion"}))
    async with httpx.AsyncClient() as client:
        r = await client.get(f"http://127.0.0.1:{gw.port}/x")
    assert r.headers.get_list("server") == ["bastion"]
    assert "x-powered-by" not in r.headers
    await gw.shutdown(1)


async def test_spoofed_forwarding_headers_from_untrusted_peer_are_ignored(
    upstream: Upstream,
) -> None:
    gw = await start_gateway(make_config(upstream.url))
    headers = {
        "x-forwarded-for": "6.6.6.6",
        "forwarded": "for=6.6.6.6;proto=https",
        "x-forwarded-proto": "https",
        "x-forwarded-host": "evil.example",
        "x-real-ip": "6.6.6.6",
        "x-request-id": "chosen-by-attacker",
    }
    async with httpx.AsyncClient() as client:
        r = await client.get(f"http://127.0.0.1:{gw.port}/x", headers=headers)
    seen = upstream.seen[-1]
    assert seen.all("x-forwarded-for") == ["127.0.0.1"]
    assert seen.all("x-forwarded-proto") == ["http"]
    assert seen.all("forwarded") == [f'for=127.0.0.1;proto=http;host="127.0.0.1:{gw.port}"']
    assert seen.all("x-forwarded-host") == [f"127.0.0.1:{gw.port}"]
    assert seen.all("x-real-ip") == []
    assert seen.all("x-request-id") != ["chosen-by-attacker"]
    assert r.headers["x-request-id"] == seen.header("x-request-id")
    await gw.shutdown(1)


async def test_trusted_proxy_chain_is_honoured(upstream: Upstream) -> None:
    config = make_config(upstream.url, proxy={"trusted_proxies": ["127.0.0.0/8"]})
    gw = await start_gateway(config)
    headers = {
        "x-forwarded-for": "198.51.100.7",
        "x-forwarded-proto": "https",
        "x-forwarded-host": "api.example",
        "x-request-id": "edge-id-42",
    }
    async with httpx.AsyncClient() as client:
        r = await client.get(f"http://127.0.0.1:{gw.port}/x", headers=headers)
    seen = upstream.seen[-1]
    assert seen.all("x-forwarded-for") == ["198.51.100.7, 127.0.0.1"]
    assert seen.all("x-forwarded-proto") == ["https"]
    assert seen.all("x-forwarded-host") == ["api.example"]
    assert seen.header("x-request-id") == "edge-id-42"
    assert r.headers["x-request-id"] == "edge-id-42"
    await gw.shutdown(1)


async def test_request_id_generated_and_unique(upstream: Upstream) -> None:
    gw = await start_gateway(make_config(upstream.url))
    async with httpx.AsyncClient() as client:
        ids = {
            (await client.get(f"http://127.0.0.1:{gw.port}/x")).headers["x-request-id"]
            for _ in range(5)
        }
    assert len(ids) == 5
    await gw.shutdown(1)


async def test_keep_alive_reuses_client_and_upstream_connections(upstream: Upstream) -> None:
    stats = TrafficStats()
    gw = await start_gateway(make_config(upstream.url), stats=stats)
    async with httpx.AsyncClient() as client:
        for _ in range(20):
            assert (await client.get(f"http://127.0.0.1:{gw.port}/x")).status_code == 200
    assert stats.connections_total == 1
    assert upstream.connections == 1
    assert sum(stats.snapshot().requests.values()) == 20
    assert stats.snapshot().requests == {"api|GET|200": 20}
    await gw.shutdown(1)


async def test_pipelined_requests_answered_in_order(upstream: Upstream) -> None:
    gw = await start_gateway(make_config(upstream.url))
    pipeline = b"".join(
        b"GET /slow?%s HTTP/1.1\r\nHost: a\r\n\r\n" % delay for delay in (b"0.2", b"0", b"0.1")
    )
    pipeline += b"GET /last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    response = await raw(gw.port, pipeline)
    assert response.count(b"HTTP/1.1 200") == 4
    assert response.index(b"slow") < response.index(b'"/last"')
    bodies = response.split(b"\r\n\r\n")
    assert bodies[1].startswith(b"slow")
    assert bodies[2].startswith(b"slow")
    await gw.shutdown(1)


async def test_chunked_request_is_streamed_and_chunked_response_relayed(upstream: Upstream) -> None:
    gw = await start_gateway(make_config(upstream.url))
    request = (
        b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    fields, _ = head_and_body(head)
    body = await reader.readexactly(int(fields["content-length"]))
    assert orjson.loads(body)["body_bytes"] == 11
    assert upstream.seen[-1].header("transfer-encoding") == "chunked"
    assert upstream.seen[-1].body == b"hello world"
    writer.write(b"GET /chunked HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    await writer.drain()
    rest = await reader.read()
    fields, body = head_and_body(rest)
    assert fields["transfer-encoding"] == "chunked"
    assert body.endswith(b"0\r\n\r\n")
    assert b"hello " in body
    assert b"world" in body
    writer.close()
    await gw.shutdown(1)


async def test_content_length_body_passed_through(upstream: Upstream) -> None:
    gw = await start_gateway(make_config(upstream.url))
    async with httpx.AsyncClient() as client:
        r = await client.put(f"http://127.0.0.1:{gw.port}/p", content=b"x" * 100_000)
    assert r.json()["body_bytes"] == 100_000
    assert upstream.seen[-1].header("content-length") == "100000"
    await gw.shutdown(1)


async def test_head_and_no_body_statuses(upstream: Upstream) -> None:
    gw = await start_gateway(make_config(upstream.url))
    async with httpx.AsyncClient() as client:
        r = await client.head(f"http://127.0.0.1:{gw.port}/big?500")
        assert r.status_code == 200
        assert r.headers["content-length"] == "500"
        assert r.content == b""
        r = await client.get(f"http://127.0.0.1:{gw.port}/status/204")
        assert r.status_code == 204
        r = await client.get(f"http://127.0.0.1:{gw.port}/status/304")
        assert r.status_code == 304
        r = await client.get(f"http://127.0.0.1:{gw.port}/big?70000")
        assert len(r.content) == 70000
    await gw.shutdown(1)


async def test_http10_client_gets_close_delimited_answer(upstream: Upstream) -> None:
    gw = await start_gateway(make_config(upstream.url))
    response = await raw(gw.port, b"GET /chunked HTTP/1.0\r\n\r\n")
    fields, body = head_and_body(response)
    assert fields["connection"] == "close"
    assert "transfer-encoding" not in fields
    assert body == b"hello chunked world"
    response = await raw(gw.port, b"GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", timeout=0.3)
    fields, _ = head_and_body(response)
    assert fields["connection"] == "keep-alive"
    await gw.shutdown(1)


async def test_until_close_upstream_response_becomes_chunked(upstream: Upstream) -> None:
    gw = await start_gateway(make_config(upstream.url))
    async with httpx.AsyncClient() as client:
        r = await client.get(f"http://127.0.0.1:{gw.port}/until-close")
        assert r.text == "all of it"
        assert r.headers["transfer-encoding"] == "chunked"
    await gw.shutdown(1)


async def test_expect_100_continue(upstream: Upstream) -> None:
    gw = await start_gateway(make_config(upstream.url))
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    writer.write(
        b"POST /e HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
    )
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(b"data")
    head = await reader.readuntil(b"\r\n\r\n")
    assert status_of(head) == 200
    assert upstream.seen[-1].header("expect") is None
    writer.close()
    await gw.shutdown(1)
