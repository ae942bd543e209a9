"""Strict-Transport-Security on every response over TLS: proxied, denied, failed, refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import trustme

from bastion.pipeline.decisions import ALLOW, Decision
from bastion.pipeline.guard import Phase
from bastion.pipeline.request import Request, TLSInfo
from tests.engine.upstream_app import Upstream
from tests.ports import free_port
from tests.tls.helpers import (
    TLSGateway,
    client_context,
    fields_of,
    issue,
    start_tls_gateway,
    tls_config,
    tls_request,
)

ONE_YEAR = "max-age=31536000; includeSubDomains"


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


async def gateway_with(upstream_url: str, ca: trustme.CA, tmp_path: Path, **tls: Any) -> TLSGateway:
    cert = issue(ca, tmp_path, "localhost")
    config = tls_config(upstream_url, tmp_path / "state", certificates=[cert.files()], **tls)
    return await start_tls_gateway(config)


@pytest.fixture
async def gateway(upstream: Upstream, ca: trustme.CA, tmp_path: Path) -> AsyncIterator[TLSGateway]:
    gw = await gateway_with(upstream.url, ca, tmp_path)
    yield gw
    await gw.close()


def request(path: str, extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nhost: localhost\r\n{extra}connection: close\r\n\r\n".encode()


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/", 200),  # proxied
        ("/status/404", 404),  # the upstream's 4xx
        ("/status/503", 503),  # the upstream's 5xx, masked by bastion
    ],
)
async def test_hsts_on_proxied_responses(
    gateway: TLSGateway, ca: trustme.CA, path: str, status: int
) -> None:
    response, _ = await tls_request(gateway.port, client_context(ca), request(path))
    assert response.startswith(b"HTTP/1.1 %d " % status)
    assert fields_of(response)["strict-transport-security"] == ONE_YEAR


async def test_hsts_on_bastions_own_denials_and_failures(ca: trustme.CA, tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens: 502 upstream.unreachable
    gateway = await gateway_with(down, ca, tmp_path)
    try:
        response, _ = await tls_request(gateway.port, client_context(ca), request("/"))
        assert response.startswith(b"HTTP/1.1 502 ")
        assert b"upstream.unreachable" in response
        assert fields_of(response)["strict-transport-security"] == ONE_YEAR
    finally:
        await gateway.close()


async def test_hsts_on_a_route_not_found(
    upstream: Upstream, ca: trustme.CA, tmp_path: Path
) -> None:
    cert = issue(ca, tmp_path, "localhost")
    config = tls_config(upstream.url, tmp_path / "state", certificates=[cert.files()])
    config = config.model_copy(
        update={"routes": (config.routes[0].model_copy(update={"path_prefix": "/api"}),)}
    )
    gateway = await start_tls_gateway(config)
    try:
        response, _ = await tls_request(gateway.port, client_context(ca), request("/other"))
        assert response.startswith(b"HTTP/1.1 404 ")
        assert b"route.not_found" in response
        assert fields_of(response)["strict-transport-security"] == ONE_YEAR
    finally:
        await gateway.close()


async def test_hsts_on_requests_refused_while_parsing(gateway: TLSGateway, ca: trustme.CA) -> None:
    broken = b"GET / HTTP/1.1\r\nhost: localhost\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n"
    response, _ = await tls_request(gateway.port, client_context(ca), broken)
    assert response.startswith(b"HTTP/1.1 400 ")
    assert fields_of(response)["strict-transport-security"] == ONE_YEAR


async def test_an_upstreams_own_hsts_is_replaced(ca: trustme.CA, tmp_path: Path) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\nstrict-transport-security: max-age=0\r\ncontent-length: 2\r\n"
            b"\r\nok"
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    gateway = await gateway_with(f"http://127.0.0.1:{port}", ca, tmp_path)
    try:
        response, _ = await tls_request(gateway.port, client_context(ca), request("/"))
        assert response.lower().count(b"strict-transport-security") == 1
        assert fields_of(response)["strict-transport-security"] == ONE_YEAR
    finally:
        await gateway.close()
        server.close()


async def test_hsts_preload_and_off(upstream: Upstream, ca: trustme.CA, tmp_path: Path) -> None:
    gateway = await gateway_with(
        upstream.url, ca, tmp_path / "a", hsts={"preload": True, "max_age": 63072000}
    )
    try:
        response, _ = await tls_request(gateway.port, client_context(ca), request("/"))
        assert (
            fields_of(response)["strict-transport-security"]
            == "max-age=63072000; includeSubDomains; preload"
        )
    finally:
        await gateway.close()
    gateway = await gateway_with(upstream.url, ca, tmp_path / "b", hsts={"enabled": False})
    try:
        response, _ = await tls_request(gateway.port, client_context(ca), request("/"))
        assert "strict-transport-security" not in fields_of(response)
    finally:
        await gateway.close()


def test_preload_needs_a_year_and_subdomains() -> None:
    from pydantic import ValidationError

    from bastion.config.tls import HSTSConfig

    with pytest.raises(ValidationError, match="preload"):
        HSTSConfig(preload=True, max_age=86400)
    with pytest.raises(ValidationError, match="preload"):
        HSTSConfig(preload=True, include_subdomains=False)


class RecordTLS:
    name: ClassVar[str] = "record_tls"
    phase: ClassVar[Phase] = Phase.AUTHENTICATE
    requires_body: ClassVar[bool] = False

    def __init__(self) -> None:
        self.fail_open = False
        self.seen: list[tuple[str, TLSInfo | None]] = []

    def check(self, request: Request) -> Decision:
        self.seen.append((request.scheme, request.tls))
        return ALLOW


async def test_guards_see_the_handshake_in_request_tls(
    upstream: Upstream, ca: trustme.CA, tmp_path: Path
) -> None:
    cert = issue(ca, tmp_path, "localhost", "localhost", "api.test")
    config = tls_config(upstream.url, tmp_path / "state", certificates=[cert.files()])
    record = RecordTLS()
    gateway = await start_tls_gateway(config, guards=[record])
    try:
        response, _ = await tls_request(
            gateway.port,
            client_context(ca, alpn=["http/1.1"]),
            b"GET / HTTP/1.1\r\nhost: api.test\r\nconnection: close\r\n\r\n",
            server_hostname="api.test",
        )
        assert response.startswith(b"HTTP/1.1 200 ")
    finally:
        await gateway.close()
    scheme, tls = record.seen[0]
    assert scheme == "https"
    assert tls is not None
    assert tls.version == "TLSv1.3"
    assert tls.cipher.startswith("TLS_")
    assert tls.server_name == "api.test"
    assert tls.alpn == "http/1.1"
    assert tls.client_cert_der is None
    seen = upstream.seen[0]
    assert seen.header("x-forwarded-proto") == "https"
