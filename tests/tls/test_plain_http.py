"""The plain-HTTP listener: refuse or redirect, credentials always refused and logged, nothing
ever forwarded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bastion.config.models import BastionConfig
from bastion.config.types import HostPort
from bastion.engine.server import GatewayServer
from bastion.observability.events import MemorySink
from bastion.tls.plain import plain_http_chain
from tests.engine.helpers import head_and_body, make_config, raw, status_of
from tests.engine.upstream_app import Upstream


async def plain_listener(
    config: BastionConfig, https_port: int = 8443
) -> tuple[GatewayServer, MemorySink]:
    events = MemorySink()
    server = GatewayServer(
        config=config,
        chain=plain_http_chain(config, events, https_port),
        listen=HostPort("127.0.0.1", 0),
    )
    await server.start()
    return server, events


def plain_config(upstream: Upstream, tmp_path: Path, policy: str, **plain: object) -> BastionConfig:
    return make_config(
        upstream.url,
        state_dir=str(tmp_path),
        tls={"enabled": True, "plain_http": {"listen": "127.0.0.1:0", "policy": policy, **plain}},
    )


@pytest.fixture
async def refusing(
    upstream: Upstream, tmp_path: Path
) -> AsyncIterator[tuple[GatewayServer, MemorySink]]:
    server, events = await plain_listener(plain_config(upstream, tmp_path, "refuse"))
    yield server, events
    await server.shutdown(1.0)


@pytest.fixture
async def redirecting(
    upstream: Upstream, tmp_path: Path
) -> AsyncIterator[tuple[GatewayServer, MemorySink]]:
    server, events = await plain_listener(plain_config(upstream, tmp_path, "redirect"))
    yield server, events
    await server.shutdown(1.0)


def get(target: str, extra: str = "", host: str = "api.example.test") -> bytes:
    return f"GET {target} HTTP/1.1\r\nhost: {host}\r\n{extra}connection: close\r\n\r\n".encode()


async def test_refuse_answers_every_request_with_a_problem(
    refusing: tuple[GatewayServer, MemorySink], upstream: Upstream
) -> None:
    server, events = refusing
    response = await raw(server.port, get("/orders?page=2"))
    assert status_of(response) == 403
    assert events.actions() == ["tls.https_required"]
    fields, body = head_and_body(response)
    assert fields["content-type"] == "application/problem+json"
    assert b'"code":"tls.https_required"' in body
    assert b"HTTPS" in body
    assert "strict-transport-security" not in fields  # never over plain HTTP
    assert upstream.seen == []


async def test_redirect_answers_308_to_the_same_host_and_target(
    redirecting: tuple[GatewayServer, MemorySink], upstream: Upstream
) -> None:
    server, _ = redirecting
    response = await raw(server.port, get("/orders/7?expand=lines&x=%20"))
    assert status_of(response) == 308
    fields, _ = head_and_body(response)
    assert fields["location"] == "https://api.example.test:8443/orders/7?expand=lines&x=%20"
    response = await raw(server.port, get("/", host="[::1]:8080"))
    assert head_and_body(response)[0]["location"] == "https://[::1]:8443/"
    assert upstream.seen == []


async def test_redirect_to_the_default_port_has_no_port(upstream: Upstream, tmp_path: Path) -> None:
    config = plain_config(upstream, tmp_path, "redirect", https_port=443)
    server, _ = await plain_listener(config, https_port=8443)
    try:
        response = await raw(server.port, get("/a", host="api.example.test:80"))
        assert head_and_body(response)[0]["location"] == "https://api.example.test/a"
    finally:
        await server.shutdown(1.0)


async def test_a_custom_key_header_counts_as_a_credential(
    upstream: Upstream, tmp_path: Path
) -> None:
    config = make_config(
        upstream.url,
        state_dir=str(tmp_path),
        auth={"api_keys": {"header": "x-partner-key"}},
        tls={"enabled": True, "plain_http": {"listen": "127.0.0.1:0", "policy": "redirect"}},
    )
    server, _ = await plain_listener(config)
    try:
        response = await raw(server.port, get("/", "x-partner-key: k\r\n"))
    finally:
        await server.shutdown(1.0)
    assert b"tls.credentials_over_http" in response


def test_plain_http_needs_tls_and_its_own_port() -> None:
    with pytest.raises(Exception, match="needs TLS"):
        BastionConfig.model_validate({"tls": {"plain_http": {"listen": "127.0.0.1:80"}}})
    with pytest.raises(Exception, match="its own port"):
        BastionConfig.model_validate(
            {
                "listen": "127.0.0.1:8443",
                "tls": {"enabled": True, "plain_http": {"listen": "127.0.0.1:8443"}},
            }
        )
