"""Regression: a response a guard holds to rewrite (field decryption) is never lost, never sent
unrewritten and never followed by stray bytes, whatever framing the upstream chose."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson

from bastion.tls.field_guard import FieldEncryptionGuard
from tests.engine.helpers import start_gateway, status_of
from tests.engine.upstream_app import Upstream
from tests.tls.test_fields import body_of, get, header_of, post, response_config


async def test_close_delimited_held_response_is_rewritten_not_lost(
    upstream: Upstream, tmp_path: Path
) -> None:
    """An upstream that ends its body by closing (no Content-Length, no chunking) used to leave
    the client with no answer at all: the held body was dropped at the close."""
    config = response_config(upstream, tmp_path)
    order = {"card": {"number": "4111 1111 1111 1111"}, "amount": 7}
    gateway = await start_gateway(config, guards=[FieldEncryptionGuard(config)])
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        writer.write(post("/payments/charge", orjson.dumps(order)))
        await reader.read()
        writer.close()
        stored = upstream.seen[0].body
        upstream.replies["/payments/orders/1"] = [
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n"
            + stored,
            b"",
        ]
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        writer.write(get("/payments/orders/1"))
        answer = await asyncio.wait_for(reader.read(), 5.0)
        writer.close()
    finally:
        await gateway.shutdown(1.0)
    assert status_of(answer) == 200
    body = body_of(answer)
    assert orjson.loads(body) == order
    assert header_of(answer, b"content-length") == str(len(body)).encode()
