"""Upstream failures: refused (502), slow (504), dying mid-body (client connection aborted), 5xx
masked, stale pooled connections retried."""

from __future__ import annotations

import asyncio

import httpx
import orjson
import pytest

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
from tests.ports import free_port  # released at once: nothing listens there


async def test_upstream_down_502() -> None:
    stats = TrafficStats()
    gw = await start_gateway(make_config(f"http://127.0.0.1:{free_port()}"), stats=stats)
    async with httpx.AsyncClient() as client:
        r = await client.get(f"http://127.0.0.1:{gw.port}/x")
    await gw.shutdown(1)
    assert r.status_code == 502
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "upstream.unreachable"
    assert r.json()["request_id"] == r.headers["x-request-id"]
    assert stats.snapshot().upstream_errors == {"api|upstream.unreachable": 1}


async def test_upstream_slow_504(upstream: Upstream) -> None:
    gw = await start_gateway(make_config(upstream.url, timeouts={"upstream_response": 0.2}))
    async with httpx.AsyncClient() as client:
        r = await client.get(f"http://127.0.0.1:{gw.port}/slow?2")
        assert r.status_code == 504
        assert r.json()["code"] == "upstream.timeout"
        r = await client.get(f"http://127.0.0.1:{gw.port}/x")  # the client connection goes on
        assert r.status_code == 200
    await gw.shutdown(1)


async def test_upstream_dies_mid_body_content_length_aborts_client(upstream: Upstream) -> None:
    gw = await start_gateway(make_config(upstream.url))
    response = await raw(gw.port, b"GET /die HTTP/1.1\r\nHost: a\r\n\r\n")
    await gw.shutdown(1)
    fields, body = head_and_body(response)
    assert fields["content-length"] == "1000"
    assert len(body) < 1000  # incomplete: a client can tell


async def test_upstream_dies_mid_body_chunked_has_no_final_chunk(upstream: Upstream) -> None:
    gw = await start_gateway(make_config(upstream.url))
    response = await raw(gw.port, b"GET /die-chunked HTTP/1.1\r\nHost: a\r\n\r\n")
    await gw.shutdown(1)
    fields, body = head_and_body(response)
    assert fields["transfer-encoding"] == "chunked"
    assert b"hello" in body
    assert not body.endswith(b"0\r\n\r\n")


async def test_httpx_sees_dying_upstream_as_error(upstream: Upstream) -> None:
    gw = await start_gateway(make_config(upstream.url))
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.HTTPError):
            await client.get(f"http://127.0.0.1:{gw.port}/die-chunked")
    await gw.shutdown(1)


async def test_upstream_5xx_body_masked(upstream: Upstream) -> None:
    gw = await start_gateway(make_config(upstream.url))
    async with httpx.AsyncClient() as client:
        r = await client.get(f"http://127.0.0.1:{gw.port}/status/503")
        assert r.status_code == 503
        assert b"secret" not in r.content
        assert r.json()["code"] == "upstream.error"
        r = await client.get(f"http://127.0.0.1:{gw.port}/status/404")
        assert r.content == b"status"
    await gw.shutdown(1)


async def test_upstream_5xx_passed_when_masking_off(upstream: Upstream) -> None:
    gw = await start_gateway(make_config(upstream.url, responses={"mask_upstream_errors": False}))
    async with httpx.AsyncClient() as client:
        r = await client.get(f"http://127.0.0.1:{gw.port}/status/500")
    await gw.shutdown(1)
    assert r.status_code == 500
    assert b"secret" in r.content


async def test_stale_pooled_connection_retried_once(upstream: Upstream) -> None:
    gw = await start_gateway(make_config(upstream.url))
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"http://127.0.0.1:{gw.port}/a")).status_code == 200
        upstream.drop_reused = True  # like an upstream that closed an idle connection
        r = await client.get(f"http://127.0.0.1:{gw.port}/b")
        assert r.status_code == 200
        assert upstream.connections == 2
        r = await client.post(f"http://127.0.0.1:{gw.port}/c", content=b"not replayable")
        assert r.status_code == 502
    await gw.shutdown(1)


async def test_upstream_slow_body_cut_off(upstream: Upstream) -> None:
    gw = await start_gateway(make_config(upstream.url, timeouts={"upstream_read": 0.2}))
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    writer.write(b"GET /die HTTP/1.1\r\nHost: a\r\n\r\n")
    data = await read_until_close(reader, timeout=2)
    writer.close()
    await gw.shutdown(1)
    assert status_of(data) == 200
    assert len(head_and_body(data)[1]) < 1000


async def test_problem_body_is_json_with_request_id() -> None:
    gw = await start_gateway(make_config(f"http://127.0.0.1:{free_port()}"))
    response = await raw(gw.port, b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    await gw.shutdown(1)
    fields, body = head_and_body(response)
    doc = orjson.loads(body)
    assert doc["status"] == 502
    assert doc["request_id"] == fields["x-request-id"]
