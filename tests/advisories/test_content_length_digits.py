"""Regression: a Content-Length of more than 4300 digits (zero-padded, so its value is small and
llhttp accepts it) is parsed without Python's integer-string limit: ``int()`` raised in the
middleware's body reader (a 500 with a traceback per request) and in the monitor's size
measurement (the exchange silently never reached the detectors, an evasion)."""

from __future__ import annotations

import logging
import socket

import pytest

from bastion.config.monitoring import SpikesConfig
from bastion.observability.alerts.dispatcher import AlertDispatcher
from bastion.observability.detect.guard import MonitorGuard, request_size
from bastion.observability.detect.monitor import Monitor
from bastion.observability.detect.spikes import SpikeDetector
from bastion.observability.events import MemorySink
from bastion.pipeline.request import ClientAddress, Headers, Request
from tests.asgi.conftest import Serve, serve
from tests.asgi.test_http import BodyGuard, middleware

__all__ = ["serve"]

PADDED = b"0" * 4400 + b"5"


def exchange(base: str, head: bytes, body: bytes) -> bytes:
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(head + body)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_middleware_reads_a_zero_padded_content_length(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    base = serve(middleware(BodyGuard()), http="httptools")
    head = (
        b"POST /upload HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: "
        + PADDED
        + b"\r\n\r\n"
    )
    with caplog.at_level(logging.ERROR):
        answer = exchange(base, head, b"hello")
    status = int(answer.split(b" ", 2)[1])
    assert status == 200, answer[:300]
    assert "Traceback" not in caplog.text


def test_monitor_measures_a_zero_padded_content_length() -> None:
    request = Request(
        method="POST",
        path="/upload",
        query="",
        headers=Headers([(b"content-length", PADDED)]),
        client=ClientAddress("198.51.100.7", 1),
        request_id="rid",
    )
    assert request_size(request) == 5
    monitor = Monitor(
        events=MemorySink(), dispatcher=AlertDispatcher([]), spikes=SpikeDetector(SpikesConfig())
    )
    MonitorGuard(monitor).on_complete(request, 401, 0, 0.0)
    assert ("ip", "198.51.100.7", "401") in monitor.spikes.windows  # type: ignore[union-attr]


async def test_gateway_reads_a_zero_padded_content_length() -> None:
    """The engine took ``int()`` of the raw field: past 4300 digits that raised, and the client
    got 500 ``gateway.internal_error`` with a traceback logged per request."""
    from bastion.config.models import BastionConfig
    from tests.engine.helpers import FAST_TIMEOUTS, raw, start_gateway, status_of
    from tests.engine.upstream_app import start_upstream

    upstream = await start_upstream()
    config = BastionConfig.model_validate(
        {
            "routes": [{"name": "r", "upstream": upstream.url}],
            "timeouts": FAST_TIMEOUTS,
            "admin": {"enabled": False},
            "events": {"sink": "none"},
        }
    )
    gateway = await start_gateway(config)
    head = b"POST /x HTTP/1.1\r\nhost: gw\r\nconnection: close\r\ncontent-length: "
    try:
        small = await raw(gateway.port, head + PADDED + b"\r\n\r\nhello")
        huge = await raw(gateway.port, head + b"9" * 4400 + b"\r\n\r\nhello")
    finally:
        await gateway.shutdown(1.0)
        assert upstream.server is not None
        upstream.server.close()
    assert status_of(small) == 200
    assert upstream.seen[0].body == b"hello"
    assert status_of(huge) in (400, 413)
    assert b"internal_error" not in huge
