"""``bastion serve`` as a user runs it: the CLI, a YAML config, several upstreams, the admin
listener, security events on stdout, and SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from pathlib import Path

import httpx
import orjson
import pytest

from tests.engine.upstream_app import Upstream, start_upstream
from tests.ports import free_port

BASTION = str(Path(sys.executable).parent / "bastion")


async def raw_exchange(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(65536), 5)
    writer.close()
    return answer


@pytest.fixture
async def upstreams() -> list[Upstream]:
    ups = [await start_upstream() for _ in range(3)]
    yield ups  # type: ignore[misc]
    for up in ups:
        assert up.server is not None
        up.server.close()


async def test_serve_routes_by_host_and_prefix_and_reports(
    upstreams: list[Upstream], tmp_path: Path
) -> None:
    orders, users, tenants = upstreams
    listen, admin = free_port(), free_port()
    config = tmp_path / "bastion.yaml"
    config.write_text(
        f"""
routes:
  - name: orders
    upstream: {orders.url}
    path_prefix: /orders
  - name: users
    upstream: {users.url}/v2
    path_prefix: /users
    strip_prefix: true
  - name: tenants
    host: "*.tenants.test"
    upstream: {tenants.url}
state_dir: {tmp_path / "state"}
timeouts: {{shutdown_grace: 2s}}
"""
    )
    process = await asyncio.create_subprocess_exec(
        BASTION,
        "serve",
        "--config",
        str(config),
        "--listen",
        f"127.0.0.1:{listen}",
        "--admin-listen",
        f"127.0.0.1:{admin}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stderr is not None
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stderr.readline(), 15)
        assert f"127.0.0.1:{listen}".encode() in line, line

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{listen}") as client:
            r = await client.get("/orders/7?x=1")
            assert r.status_code == 200
            assert r.json()["target"] == "/orders/7?x=1"
            r = await client.get("/users/42")
            assert r.status_code == 200
            assert r.json()["target"] == "/v2/42"
            r = await client.get("/orders", headers={"host": "acme.tenants.test"})
            assert r.status_code == 200
            r = await client.get("/elsewhere")
            assert r.status_code == 404
            assert r.headers["content-type"] == "application/problem+json"
            assert r.json()["code"] == "route.not_found"
            assert r.json()["request_id"] == r.headers["x-request-id"]

        answer = await raw_exchange(
            listen,
            b"POST /orders HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /orders/smuggled HTTP/1.1\r\n\r\n",
        )
        assert answer.startswith(b"HTTP/1.1 400 ")
        assert [s.target for s in orders.seen] == ["/orders/7?x=1"]
        assert [s.target for s in users.seen] == ["/v2/42"]
        assert [s.target for s in tenants.seen] == ["/orders"]

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{admin}") as client:
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/readyz")).status_code == 200
            metrics = (await client.get("/metrics")).text
        assert 'bastion_http_requests_total{method="GET",route="orders",status="200"} 1.0' in (
            metrics
        )
        assert 'bastion_protocol_errors_total{code="request.malformed"} 1.0' in metrics

        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
        lines = [orjson.loads(line) for line in (await process.stdout.read()).splitlines()]
        events = [e for e in lines if e["event"]["dataset"] == "bastion.security"]
        access = [e for e in lines if e["event"]["dataset"] == "bastion.access"]
        assert [(e["url"]["path"], e["http"]["response"]["status_code"]) for e in access] == [
            ("/orders/7", 200),
            ("/users/42", 200),
            ("/orders", 200),
            ("/elsewhere", 404),
        ]
        actions = [e["event"]["action"] for e in events]
        assert actions == ["route.not_found", "request.malformed"]
        assert all(e["event"]["outcome"] == "failure" for e in events)
        assert events[0]["url"]["path"] == "/elsewhere"
        assert events[0]["source"]["ip"] == "127.0.0.1"
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_serve_refuses_an_unbindable_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = await asyncio.create_subprocess_exec(
            BASTION,
            "serve",
            "--upstream",
            "http://127.0.0.1:9",
            "--listen",
            f"127.0.0.1:{port}",
            "--admin-listen",
            f"127.0.0.1:{free_port()}",
            "--state-dir",
            str(tmp_path / "state"),
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await asyncio.wait_for(process.communicate(), 15)
    assert process.returncode != 0
    assert str(port).encode() in stderr
    assert b"Traceback" not in stderr
