"""ASGI scope -> request view: the same facts the gateway engine would hand the guards."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import pytest

from bastion.asgi import BastionMiddleware, request_view
from bastion.asgi.types import Message, Receive, Scope, Send
from bastion.asgi.view import NO_PEER, ScopeReader, host_name, path_refusal
from bastion.config import build_config
from bastion.config.types import parse_network
from bastion.observability.events import MemorySink
from bastion.pipeline import GuardChain, Request
from bastion.pipeline.forwarding import ForwardingPolicy

TRUST_LOOPBACK = ForwardingPolicy([parse_network("127.0.0.1")])
ID = b"x-request-id"


def build_request(scope: Scope, policy: ForwardingPolicy, id_header: bytes) -> Request:
    return ScopeReader(policy, id_header).request(scope)


def scope(**overrides: Any) -> Scope:
    base: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/items",
        "raw_path": b"/items",
        "query_string": b"",
        "headers": [(b"host", b"api.example.com:8443")],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }
    base.update(overrides)
    return base


def test_path_is_the_raw_path_and_the_query_stays_raw() -> None:
    request = build_request(
        scope(raw_path=b"/a%2Fb/%C3%BC", path="/a/b/\u00fc", query_string=b"q=a%20b&x"),
        ForwardingPolicy(),
        ID,
    )

    assert request.path == "/a%2Fb/%C3%BC"
    assert request.query == "q=a%20b&x"
    assert request.host == "api.example.com"
    assert request.method == "GET"


def test_without_raw_path_the_path_is_quoted_back() -> None:
    request = build_request(
        scope(raw_path=None, path="/files/a b/\u00fc;v=1"), ForwardingPolicy(), ID
    )
    assert request.path == "/files/a%20b/%C3%BC;v=1"


def test_a_raw_path_carrying_the_query_is_cut_at_the_question_mark() -> None:
    request = build_request(scope(raw_path=b"/items?page=2"), ForwardingPolicy(), ID)
    assert request.path == "/items"


def test_a_unix_socket_peer_trusts_no_forwarding_header() -> None:
    request = build_request(
        scope(client=None, headers=[(b"x-forwarded-for", b"203.0.113.5"), (ID, b"mine")]),
        TRUST_LOOPBACK,
        ID,
    )
    assert request.peer == NO_PEER
    assert request.client == NO_PEER
    assert request.request_id != "mine"


def test_rfc7239_forwarded_and_ws_schemes() -> None:
    request = build_request(
        scope(
            type="websocket",
            scheme="wss",
            headers=[
                (b"host", b"internal:8000"),
                (b"forwarded", b'for="[2001:db8::7]:4711";proto=https'),
                (ID, b"lb-1"),
            ],
        ),
        TRUST_LOOPBACK,
        ID,
    )
    assert request.client.ip == "2001:db8::7"
    assert request.scheme == "https"
    assert request.host == "internal"
    assert request.request_id == "lb-1"


def test_tls_facts_come_from_the_tls_extension() -> None:
    pem = ssl.DER_cert_to_PEM_cert(b"client-certificate-der")
    verified = {
        "tls_version": 0x0304,
        "cipher_suite": 0x1302,
        "client_cert_chain": [pem],
        "client_cert_error": None,
    }
    failed = verified | {"client_cert_error": "certificate has expired"}

    good = build_request(
        scope(scheme="https", extensions={"tls": verified}), ForwardingPolicy(), ID
    )
    bad = build_request(scope(scheme="https", extensions={"tls": failed}), ForwardingPolicy(), ID)
    plain = build_request(scope(), ForwardingPolicy(), ID)

    assert good.tls is not None
    assert (good.tls.version, good.tls.cipher) == ("TLSv1.3", "TLS_AES_256_GCM_SHA384")
    assert good.tls.client_cert_der == b"client-certificate-der"
    assert bad.tls is not None
    assert bad.tls.client_cert_der is None
    assert plain.tls is None


def test_host_names_lose_their_port() -> None:
    assert host_name("API.Example.com:443") == "api.example.com"
    assert host_name("[2001:db8::1]:8080") == "[2001:db8::1]"
    assert host_name("localhost") == "localhost"


@pytest.mark.parametrize(
    "path",
    ["/a/../b", "/a/%2E%2e/b", "/a/%2e", "/.", "/a%2f..%2fb", "/a/..%5cb", "/a\\..\\b", "/a%00b"],
)
def test_paths_the_gateway_refuses_are_refused(path: str) -> None:
    refusal = path_refusal(path)
    assert refusal is not None
    assert refusal.code == "request.invalid_path"


@pytest.mark.parametrize("path", ["/a/..b/c.d/%2e%2ex", "/v1.2/items", "/%41", "/"])
def test_ordinary_paths_pass(path: str) -> None:
    assert path_refusal(path) is None


def test_lifespan_and_unknown_scopes_pass_straight_through() -> None:
    seen: list[tuple[Scope, Receive, Send]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append((scope, receive, send))

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        return None

    mw = BastionMiddleware(app, build_config({}), chain=GuardChain([], MemorySink()))
    lifespan: Scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
    asyncio.run(mw(lifespan, receive, send))

    assert seen == [(lifespan, receive, send)]
    assert request_view(lifespan) is None
