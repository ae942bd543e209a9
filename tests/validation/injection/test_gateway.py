"""The ``injection`` guard through the real gateway (built by assembly, as ``bastion serve`` does)
in front of a recording upstream, and through ``BastionMiddleware``."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest
from pydantic import ValidationError

from bastion.asgi.middleware import BastionMiddleware
from bastion.assembly import build_gateway_chain
from bastion.config.models import BastionConfig
from bastion.config.types import HostPort
from bastion.engine.server import GatewayServer
from bastion.errors import ConfigError
from bastion.observability.events import MemorySink
from bastion.observability.traffic import TrafficStats
from bastion.validation.injection.guard import InjectionGuard
from tests.engine.helpers import head_and_body, make_config, raw, status_of
from tests.engine.upstream_app import Upstream

SQL = "1' OR '1'='1"
XSS = "<script>alert(document.cookie)</script>"
COMMAND = "127.0.0.1; cat /etc/passwd"

Send = Callable[[bytes], Awaitable[bytes]]


def post(path: str, body: bytes, content_type: str = "application/json", extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nhost: gw\r\ncontent-type: {content_type}\r\n{extra}"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body


def get(target: str, *headers: str) -> bytes:
    extra = "".join(f"{h}\r\n" for h in headers)
    return f"GET {target} HTTP/1.1\r\nhost: gw\r\n{extra}connection: close\r\n\r\n".encode()


@pytest.fixture
async def gateway(
    upstream: Upstream,
) -> AsyncIterator[Callable[..., Awaitable[tuple[Send, MemorySink]]]]:
    servers: list[GatewayServer] = []

    async def start(
        limits: dict[str, Any] | None = None, **injection: Any
    ) -> tuple[Send, MemorySink]:
        config = make_config(
            upstream.url,
            limits=limits or {},
            routes=[
                {"name": "api", "upstream": upstream.url},
                {"name": "cms", "upstream": upstream.url, "path_prefix": "/cms"},
            ],
            injection=injection,
        )
        sink = MemorySink()
        chain = build_gateway_chain(config, sink)
        server = GatewayServer(
            config=config, chain=chain, listen=HostPort("127.0.0.1", 0), stats=TrafficStats()
        )
        await server.start()
        servers.append(server)

        async def send(data: bytes) -> bytes:
            return await raw(server.port, data)

        return send, sink

    yield start
    for server in servers:
        await server.shutdown(1.0)


def problem(response: bytes) -> dict[str, Any]:
    headers, body = head_and_body(response)
    assert headers["content-type"] == "application/problem+json"
    return dict(orjson.loads(body))


@pytest.mark.parametrize(
    ("request_bytes", "kind", "where", "location", "pointer"),
    [
        (get("/items?q=" + quote(SQL)), "sql", "query", "q", "/query/q"),
        (get("/items/" + quote(XSS, safe="")), "xss", "path", "1", "/path/1"),
        (
            post("/items", orjson.dumps({"item": {"tags": ["a", COMMAND]}})),
            "command",
            "body",
            "/item/tags/1",
            "/body/item/tags/1",
        ),
        (
            post(
                "/items",
                ("name=ann&note=" + quote(SQL)).encode(),
                "application/x-www-form-urlencoded",
            ),
            "sql",
            "body",
            "/note",
            "/body/note",
        ),
        (get("/items", "x-search: " + SQL), "sql", "header", "x-search", "/header/x-search"),
    ],
    ids=["query", "path", "json", "form", "header"],
)
async def test_block_mode_refuses_before_the_upstream_and_never_echoes_the_value(
    gateway: Callable[..., Awaitable[tuple[Send, MemorySink]]],
    upstream: Upstream,
    request_bytes: bytes,
    kind: str,
    where: str,
    location: str,
    pointer: str,
) -> None:
    send, sink = await gateway(mode="block", headers=["x-search"])
    response = await send(request_bytes)
    assert status_of(response) == 400
    doc = problem(response)
    assert doc["code"] == "injection.detected"
    assert (doc["kind"], doc["in"], doc["location"]) == (kind, where, location)
    assert doc["errors"][0]["pointer"] == pointer
    _, body = head_and_body(response)
    for value in (SQL, XSS, COMMAND, quote(SQL), "'", "<script", "alert(", "passwd"):
        assert value.encode() not in body
    assert upstream.seen == []  # nothing reached the upstream
    assert sink.actions()[-1] == "injection.detected"
    assert sink.events[-1].fields["injection.mode"] == "block"


async def test_clean_requests_pass_untouched(
    gateway: Callable[..., Awaitable[tuple[Send, MemorySink]]], upstream: Upstream
) -> None:
    send, sink = await gateway(mode="block", headers=["x-search"])
    body = orjson.dumps({"name": "Conan O'Brien", "bio": "select the best option; Tom & Jerry"})
    assert status_of(await send(post("/items", body))) == 200
    assert (
        status_of(await send(get("/items?q=O%27Brien&sort=-date", "x-search: rock 'n' roll")))
        == 200
    )
    assert [s.body for s in upstream.seen] == [body, b""]
    assert "injection.detected" not in sink.actions()


async def test_monitor_mode_lets_the_request_through_and_records_an_event(
    gateway: Callable[..., Awaitable[tuple[Send, MemorySink]]], upstream: Upstream
) -> None:
    send, sink = await gateway(mode="monitor")
    body = orjson.dumps({"comment": XSS})
    assert status_of(await send(post("/items", body))) == 200
    assert upstream.seen[0].body == body
    event = sink.events[-1]
    assert event.action == "injection.detected"
    assert event.outcome == "success"
    assert event.fields["injection.mode"] == "monitor"
    assert event.fields["injection.kind"] == "xss"
    assert event.fields["injection.location"] == "/comment"
    assert XSS not in repr(event.fields)


async def test_field_and_route_exemptions(
    gateway: Callable[..., Awaitable[tuple[Send, MemorySink]]], upstream: Upstream
) -> None:
    send, _ = await gateway(
        mode="block",
        exempt=["query:debug"],
        rules=[
            {"route": "cms", "exempt": [{"field": "body:/pages/*/html", "kinds": ["xss"]}]},
            {"path_prefix": "/legacy", "mode": "monitor"},
        ],
    )
    html = {"pages": [{"html": "<img src=x onerror=alert(1)>", "title": "Home"}]}
    assert status_of(await send(post("/cms/pages", orjson.dumps(html)))) == 200
    # the exemption is for XSS in that field only: SQL there, or XSS elsewhere, is still refused
    sql_there = {"pages": [{"html": SQL}]}
    assert status_of(await send(post("/cms/pages", orjson.dumps(sql_there)))) == 400
    xss_title = {"pages": [{"html": "<b>ok</b>", "title": XSS}]}
    assert status_of(await send(post("/cms/pages", orjson.dumps(xss_title)))) == 400
    # the same field on another route is not exempt
    assert status_of(await send(post("/items", orjson.dumps(html)))) == 400
    # a globally exempt parameter, and a route in monitor mode
    assert status_of(await send(get("/items?debug=" + quote(SQL)))) == 200
    assert status_of(await send(get("/legacy/x?q=" + quote(SQL)))) == 200
    assert len(upstream.seen) == 3


async def test_names_are_inspected_but_never_echoed(
    gateway: Callable[..., Awaitable[tuple[Send, MemorySink]]], upstream: Upstream
) -> None:
    send, _ = await gateway(mode="block")
    response = await send(post("/items", orjson.dumps({"user": {XSS: 1}})))
    assert status_of(response) == 400
    doc = problem(response)
    assert (doc["in"], doc["location"]) == ("body", "/user")
    assert b"<script" not in head_and_body(response)[1]
    response = await send(get("/items?" + quote(SQL) + "=1"))
    assert problem(response)["location"] == ""
    assert upstream.seen == []


async def test_multipart_text_fields_are_inspected_and_files_are_not(
    gateway: Callable[..., Awaitable[tuple[Send, MemorySink]]], upstream: Upstream
) -> None:
    send, _ = await gateway(mode="block")

    def form(field: str, file: bytes) -> bytes:
        return (
            b'--XyZ\r\ncontent-disposition: form-data; name="caption"\r\n\r\n'
            + field.encode()
            + b'\r\n--XyZ\r\ncontent-disposition: form-data; name="f"; filename="a.sh"\r\n'
            b"content-type: text/plain\r\n\r\n" + file + b"\r\n--XyZ--\r\n"
        )

    content_type = "multipart/form-data; boundary=XyZ"
    ok = await send(post("/upload", form("Holiday", b"#!/bin/sh\n; cat /etc/passwd"), content_type))
    assert status_of(ok) == 200
    refused = await send(post("/upload", form(COMMAND, b"x"), content_type))
    assert status_of(refused) == 400
    assert problem(refused)["location"] == "/caption"
    assert len(upstream.seen) == 1


async def test_too_many_values_are_refused_in_block_mode(
    gateway: Callable[..., Awaitable[tuple[Send, MemorySink]]], upstream: Upstream
) -> None:
    send, _ = await gateway(mode="block", max_values=50)
    response = await send(post("/items", orjson.dumps(["x"] * 60)))
    assert status_of(response) == 400
    assert problem(response)["code"] == "injection.too_many_values"
    assert upstream.seen == []


async def test_the_middleware_gets_the_same_guard() -> None:
    seen: list[bytes] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        seen.append(message.get("body", b""))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    sink = MemorySink()
    config = BastionConfig.model_validate(
        {"injection": {"mode": "block"}, "events": {"sink": "none"}}
    )
    middleware = BastionMiddleware(app, config, events=sink)
    transport = httpx.ASGITransport(app=middleware)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        refused = await client.post("/items", json={"q": SQL})
        passed = await client.post("/items", json={"q": "O'Brien"})
    assert refused.status_code == 400
    assert refused.json()["code"] == "injection.detected"
    assert SQL not in refused.text
    assert passed.status_code == 200
    assert seen == [b'{"q":"O\'Brien"}']


def test_operator_errors_name_the_field() -> None:
    with pytest.raises(ValidationError, match="expected path, query, header or body"):
        BastionConfig.model_validate({"injection": {"exempt": ["cookie:sid"]}})
    with pytest.raises(ValidationError, match="exactly one of route and path_prefix"):
        BastionConfig.model_validate({"injection": {"rules": [{"mode": "block"}]}})
    config = BastionConfig.model_validate(
        {
            "routes": [{"name": "api", "upstream": "http://127.0.0.1:1"}],
            "injection": {"mode": "block", "rules": [{"route": "nope", "mode": "off"}]},
        }
    )
    with pytest.raises(ConfigError, match=r"injection.rules\[0\].route: 'nope' is not a route"):
        InjectionGuard(config.injection, {"api"})


def test_off_by_default_and_no_guard_then() -> None:
    config = BastionConfig()
    assert config.injection.mode == "off"
    assert "injection" not in build_gateway_chain(config, MemorySink()).names()


async def test_xml_bodies_are_inspected_value_by_value(
    gateway: Callable[..., Awaitable[tuple[Send, MemorySink]]], upstream: Upstream
) -> None:
    """An XML document is markup by nature: its values are inspected, not its tags."""
    send, _ = await gateway(mode="block")
    order = b'<?xml version="1.0"?><order id="7"><note>Leave at door; thanks</note></order>'
    assert status_of(await send(post("/orders", order, "application/xml"))) == 200
    attack = b'<?xml version="1.0"?><order id="7"><note>' + COMMAND.encode() + b"</note></order>"
    refused = await send(post("/orders", attack, "application/xml"))
    assert status_of(refused) == 400
    assert problem(refused)["location"] == "/order/note"
    in_attribute = await send(post("/orders", f'<order id="{SQL}"/>'.encode(), "text/xml"))
    assert status_of(in_attribute) == 400
    assert problem(in_attribute)["location"] == "/order/@id"
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><d>&b;</d>'
    )
    # entity declarations are never expanded: the document is inspected as text (and refused,
    # since a DOCTYPE reads as markup)
    assert status_of(await send(post("/orders", bomb, "application/xml"))) == 400
    assert len(upstream.seen) == 1


async def test_a_repeated_json_member_cannot_hide_an_injection(
    gateway: Callable[..., Awaitable[tuple[Send, MemorySink]]], upstream: Upstream
) -> None:
    """Parsers differ on which of two same-named members wins; both are inspected."""
    send, _ = await gateway(mode="block")
    first = ('{"q": "' + SQL + '", "q": "shoes"}').encode()
    last = ('{"q": "shoes", "q": "' + SQL + '"}').encode()
    for body in (first, last):
        response = await send(post("/items", body))
        assert status_of(response) == 400
        assert problem(response)["location"] == "/q"
    assert upstream.seen == []


async def test_compressed_bodies_are_inspected_decompressed_and_forwarded_as_sent(
    gateway: Callable[..., Awaitable[tuple[Send, MemorySink]]], upstream: Upstream
) -> None:
    send, _ = await gateway(mode="block", limits={"max_body_bytes": 65536})
    gzip_header = "content-encoding: gzip\r\n"
    clean = gzip.compress(orjson.dumps({"name": "O'Brien"}))
    assert status_of(await send(post("/items", clean, extra=gzip_header))) == 200
    assert upstream.seen[0].body == clean  # forwarded compressed, as the client sent it
    attack = gzip.compress(orjson.dumps({"name": SQL}))
    refused = await send(post("/items", attack, extra=gzip_header))
    assert status_of(refused) == 400
    assert problem(refused)["location"] == "/name"
    deflated = zlib.compress(orjson.dumps({"name": XSS}))
    assert (
        status_of(await send(post("/items", deflated, extra="content-encoding: deflate\r\n")))
        == 400
    )
    brotli = await send(post("/items", b"\x0b\x02\x80{}\x03", extra="content-encoding: br\r\n"))
    assert status_of(brotli) == 415
    assert problem(brotli)["code"] == "injection.unsupported_encoding"
    bomb = gzip.compress(b'{"a": "' + b"x" * 1_000_000 + b'"}')  # about 1 KB, 1 MB inflated
    too_large = await send(post("/items", bomb, extra=gzip_header))
    assert status_of(too_large) == 413
    assert problem(too_large)["code"] == "injection.too_large"
    assert len(upstream.seen) == 1


async def test_monitor_mode_records_what_it_could_not_inspect(
    gateway: Callable[..., Awaitable[tuple[Send, MemorySink]]], upstream: Upstream
) -> None:
    send, sink = await gateway(mode="monitor")
    response = await send(post("/items", b"\x0b\x02\x80{}\x03", extra="content-encoding: br\r\n"))
    assert status_of(response) == 200
    assert sink.actions()[-1] == "injection.unsupported_encoding"


async def test_json_the_parser_refuses_is_still_inspected(
    gateway: Callable[..., Awaitable[tuple[Send, MemorySink]]], upstream: Upstream
) -> None:
    """Deeper than the parser goes, or not quite JSON: the string literals are inspected."""
    send, _ = await gateway(mode="block", limits={"max_body_bytes": 1 << 20})
    # JSON escapes hide the markup from a reading of the raw text: the literals are decoded
    escaped = "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e"
    deep = ("[" * 5000 + '"' + escaped + '"' + "]" * 5000).encode()
    lenient = ('{"note": "' + escaped + '", trailing: 1,}').encode()
    for body in (deep, lenient):
        response = await send(post("/items", body))
        assert status_of(response) == 400
        assert problem(response)["kind"] == "xss"
    fine = ("[" * 5000 + '"shoes"' + "]" * 5000).encode()
    assert status_of(await send(post("/items", fine))) == 200
    assert len(upstream.seen) == 1
