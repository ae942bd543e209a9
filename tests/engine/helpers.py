"""Shared fixtures' machinery for engine and advisory tests: a gateway in front of a real upstream,
and a raw-socket client that sends exact bytes and reads what comes back."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from bastion.config.models import BastionConfig
from bastion.config.types import HostPort
from bastion.engine.server import GatewayServer
from bastion.observability.events import MemorySink
from bastion.observability.traffic import TrafficStats
from bastion.pipeline.chain import GuardChain
from bastion.pipeline.guard import Guard
from bastion.pipeline.routing import Route, Router

FAST_TIMEOUTS = {
    "header_read": 0.5,
    "body_read": 0.5,
    "upstream_connect": 0.5,
    "upstream_response": 0.5,
    "upstream_read": 0.5,
    "idle": 1.0,
    "shutdown_grace": 2.0,
}


def make_config(upstream_url: str, **overrides: Any) -> BastionConfig:
    data: dict[str, Any] = {
        "routes": [{"name": "api", "upstream": upstream_url}],
        "timeouts": FAST_TIMEOUTS,
        "admin": {"enabled": False},
        "events": {"sink": "none"},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return BastionConfig.model_validate(data)


async def start_gateway(
    config: BastionConfig,
    guards: Sequence[Guard] = (),
    routes: Sequence[Route] | None = None,
    stats: TrafficStats | None = None,
) -> GatewayServer:
    if routes is None:
        routes = [Route.from_config(r) for r in config.routes]
    chain = GuardChain([Router(routes), *guards], MemorySink())
    server = GatewayServer(
        config=config, chain=chain, listen=HostPort("127.0.0.1", 0), stats=stats or TrafficStats()
    )
    await server.start()
    return server


async def raw(port: int, data: bytes | Sequence[bytes], *, timeout: float = 3.0) -> bytes:
    """Send ``data`` (pieces sent one by one) and read until the server closes or goes quiet."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for piece in [data] if isinstance(data, bytes) else data:
            writer.write(piece)
            await writer.drain()
        return await read_until_close(reader, timeout=timeout)
    finally:
        writer.close()


async def read_until_close(reader: asyncio.StreamReader, *, timeout: float = 3.0) -> bytes:
    chunks: list[bytes] = []
    try:
        while True:
            if reader.at_eof():
                break
            chunk = await asyncio.wait_for(reader.read(65536), timeout)
            if not chunk:
                break
            chunks.append(chunk)
    except (TimeoutError, ConnectionError):
        pass
    return b"".join(chunks)


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def head_and_body(response: bytes) -> tuple[dict[str, str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    fields: dict[str, str] = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        fields[name.decode().lower()] = value.decode("latin-1").strip()
    return fields, body
