"""The validation guard in the real engine: what reaches the recording upstream, and what the
client receives on the wire. Also BastionMiddleware, which gets the same guard from the config."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest

from bastion.asgi import BastionMiddleware
from bastion.asgi.types import Receive, Scope, Send
from bastion.engine.server import GatewayServer
from bastion.observability.events import MemorySink
from tests.engine.upstream_app import Upstream
from tests.validation.gateway import gateway_config, start_validating_gateway
from tests.validation.helpers import PETS_30, config_for

PROBLEM = "application/problem+json"


@pytest.fixture
async def gateway(upstream: Upstream) -> AsyncIterator[GatewayServer]:
    config = gateway_config(
        PETS_30,
        upstream.url,
        routes=[
            {"name": "api", "upstream": upstream.url},
            {"name": "legacy", "upstream": upstream.url, "path_prefix": "/legacy"},
        ],
        validation={"enabled": True, "pass_through": ["legacy"]},
        limits={"max_body_bytes": 8 * 1024 * 1024},
    )
    server = await start_validating_gateway(config)
    yield server
    await server.shutdown(1.0)


def client(server: GatewayServer) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=10)


async def test_valid_requests_reach_the_upstream_untouched(
    gateway: GatewayServer, upstream: Upstream
) -> None:
    body = b'{"name": "Rex",  "age": 3, "tags": ["a"]}'  # spacing kept: bytes are not re-encoded
    async with client(gateway) as http:
        response = await http.post(
            "/v1/pets", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 200
        listed = await http.get("/v1/pets?limit=5&tags=a&tags=b")
        assert listed.status_code == 200
    assert [s.target for s in upstream.seen] == ["/v1/pets", "/v1/pets?limit=5&tags=a&tags=b"]
    assert upstream.seen[0].body == body


@pytest.mark.parametrize(
    ("method", "target", "headers", "body", "status", "code"),
    [
        ("GET", "/v1/admin", {}, None, 404, "validation.not_found"),
        ("PUT", "/v1/pets", {}, None, 405, "validation.method_not_allowed"),
        ("GET", "/v1/pets/x", {}, None, 400, "validation.parameter_invalid"),
        ("POST", "/v1/pets", {"content-type": "text/csv"}, b"a,b", 415,
         "validation.unsupported_media_type"),
        ("POST", "/v1/pets", {"content-type": "application/json"}, b'{"id": 1, "name": "x"}', 400,
         "validation.body_invalid"),
    ],
)  # fmt: skip
async def test_violations_never_reach_the_upstream(
    gateway: GatewayServer,
    upstream: Upstream,
    method: str,
    target: str,
    headers: dict[str, str],
    body: bytes | None,
    status: int,
    code: str,
) -> None:
    async with client(gateway) as http:
        response = await http.request(method, target, headers=headers, content=body)
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == code
    if status == 405:
        assert response.headers["allow"] == "GET, POST, HEAD"
    assert upstream.seen == []


async def test_a_pass_through_route_is_not_validated(
    gateway: GatewayServer, upstream: Upstream
) -> None:
    async with client(gateway) as http:
        response = await http.delete("/legacy/anything?x=1")
    assert response.status_code == 200
    assert [s.target for s in upstream.seen] == ["/legacy/anything?x=1"]


async def test_deep_and_huge_json_is_refused_quickly_with_bounded_memory(
    gateway: GatewayServer, upstream: Upstream
) -> None:
    """Deep nesting, a million-deep array and a 4 MB body of two million members are refused
    before orjson builds anything: Python allocations stay a small multiple of the body."""
    deep = b'{"name": "x", "tags": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    deepest = b"[" * 1_000_000 + b"]" * 1_000_000
    many = b"[" + b"0," * 2_000_000 + b"0]"
    headers = {"content-type": "application/json"}
    async with client(gateway) as http:
        for body, message in ((deep, "nests deeper than 32 levels"),
                              (deepest, "has more than 10000 members"),
                              (many, "has more than 10000 members")):  # fmt: skip
            tracemalloc.start()
            started = time.perf_counter()
            response = await http.post("/v1/pets", content=body, headers=headers)
            elapsed = time.perf_counter() - started
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            assert response.status_code == 400
            assert response.json()["errors"] == [{"pointer": "/body", "message": message}]
            # the body, buffered once and joined once, plus the stripped copy: never the
            # hundreds of MB a parsed million-member document would take
            assert peak < 6 * len(body) + 1024 * 1024, (peak, len(body))
            print(f"{len(body)} byte body refused in {elapsed * 1000:.0f} ms, peak {peak} B")
    assert upstream.seen == []


async def test_middleware_gets_the_validation_guard() -> None:
    calls: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        calls.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    middleware = BastionMiddleware(app, config_for(PETS_30), events=MemorySink())
    transport = httpx.ASGITransport(app=middleware)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        ok = await http.post("/v1/pets", json={"name": "Rex"})
        refused = await http.post("/v1/pets", json={"name": "Rex", "id": 7})
        missing = await http.get("/v1/nowhere")
    assert ok.status_code == 200
    assert refused.status_code == 400
    assert orjson.loads(refused.content)["errors"] == [
        {"pointer": "/body/id", "message": "is read-only; a request cannot set it"}
    ]
    assert missing.status_code == 404
    assert calls == ["/v1/pets"]


async def test_refusals_and_monitored_violations_are_security_events(upstream: Upstream) -> None:
    """Each refusal is one event with the problem's code; in monitor mode the request goes on
    and the event names the pointers. Neither ever carries the submitted value."""
    secret = "s3cr3t-value-<script>"
    body = orjson.dumps({"name": "n", "id": 5, "age": secret})
    headers = {"content-type": "application/json"}
    for mode, status in (("block", 400), ("monitor", 200)):
        events = MemorySink()
        config = gateway_config(PETS_30, upstream.url, validation={"enabled": True, "mode": mode})
        server = await start_validating_gateway(config, events)
        try:
            async with client(server) as http:
                response = await http.post("/v1/pets", content=body, headers=headers)
        finally:
            await server.shutdown(1.0)
        assert response.status_code == status
        assert secret not in response.text
        [event] = [e for e in events.events if e.action == "validation.body_invalid"]
        ecs = orjson.dumps(event.to_ecs()).decode()
        assert secret not in ecs
        if mode == "monitor":
            assert event.fields["pointers"] == ["/body/id", "/body/age"]
    assert len(upstream.seen) == 1  # only the monitored request
