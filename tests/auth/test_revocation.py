"""Revocation across gateway processes: ``bastion keys revoke`` takes effect on every instance
within one second, through Redis pub/sub when configured and through the periodic store read
otherwise (or when the announcement is lost because Redis is down).

Two real ``bastion serve`` processes share one store; the test polls both until they refuse the
revoked key and measures how long that took from the moment ``revoke`` was run.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from click.testing import CliRunner

from bastion.cli.main import cli
from tests.engine.upstream_app import Upstream
from tests.ports import free_port

WITHIN = 1.0


class Gateway:
    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process = process
        self.port = port

    async def status(self, client: httpx.AsyncClient, key: str) -> int:
        response = await client.get(
            f"http://127.0.0.1:{self.port}/orders", headers={"x-api-key": key}
        )
        return response.status_code


async def start_gateway(config: Path) -> Gateway:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from bastion.cli.main import main; main()",
        "serve", "--config", str(config), "--listen", f"127.0.0.1:{port}",
        stderr=asyncio.subprocess.PIPE, env=os.environ.copy(),
    )  # fmt: skip
    assert process.stderr is not None
    deadline = time.monotonic() + 20
    seen = b""
    while time.monotonic() < deadline:
        line = await asyncio.wait_for(process.stderr.readline(), 20)
        seen += line
        if b"listening on" in line:
            return Gateway(process, port)
        if not line:
            break
    raise AssertionError(f"gateway did not start: {seen.decode(errors='replace')}")


@pytest.fixture
async def gateways() -> AsyncIterator[Callable[[Path], Any]]:
    started: list[Gateway] = []

    async def start(config: Path) -> Gateway:
        gateway = await start_gateway(config)
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        if gateway.process.returncode is None:
            gateway.process.terminate()
            await asyncio.wait_for(gateway.process.wait(), 10)


def write_config(path: Path, upstream: Upstream, **sections: Any) -> Path:
    data: dict[str, Any] = {
        "state_dir": str(path.parent / "state"),
        "routes": [{"name": "orders", "upstream": upstream.url, "path_prefix": "/orders"}],
        "admin": {"enabled": False},
        "events": {"sink": "none"},
        "timeouts": {"shutdown_grace": "1s"},
    }
    data.update(sections)
    path.write_text(yaml.safe_dump(data))
    return path


def keys(config: Path, *args: str) -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["keys", *args, "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    doc: dict[str, Any] = orjson.loads(result.output)
    return doc


async def revoked_everywhere_after(config: Path, gateways: list[Gateway]) -> float:
    """Create a key, see every gateway accept it, revoke it; seconds until all refuse it."""
    key = keys(config, "create", "--consumer", "acme")
    async with httpx.AsyncClient(timeout=2) as client:
        deadline = time.monotonic() + 10
        while True:
            statuses = [await g.status(client, key["secret"]) for g in gateways]
            if statuses == [200] * len(gateways):
                break
            assert time.monotonic() < deadline, statuses
            await asyncio.sleep(0.05)
        started = time.monotonic()
        await asyncio.to_thread(keys, config, "revoke", key["id"])
        while True:
            statuses = [await g.status(client, key["secret"]) for g in gateways]
            elapsed = time.monotonic() - started
            if statuses == [401] * len(gateways):
                return elapsed
            assert elapsed < 5, statuses
            await asyncio.sleep(0.02)


async def test_revocation_reaches_two_gateways_within_a_second_through_redis(
    tmp_path: Path,
    upstream: Upstream,
    gateways: Callable[[Path], Any],
    postgres_dsn: str,
    pg_schema: str,
    redis_url: str,
    redis_prefix: str,
) -> None:
    # The periodic store read is slowed to 30 s: only the announcement can be this fast.
    config = write_config(
        tmp_path / "bastion.yaml",
        upstream,
        postgres={"dsn": postgres_dsn, "schema": pg_schema},
        redis={"url": redis_url, "key_prefix": redis_prefix},
        auth={"api_keys": {"refresh_interval": "30s"}},
    )
    keys(config, "create", "--consumer", "bootstrap")  # the store exists before the gateways
    first, second = await gateways(config), await gateways(config)
    await asyncio.sleep(0.3)  # both subscribed
    elapsed = await revoked_everywhere_after(config, [first, second])
    print(f"revoked everywhere after {elapsed * 1000:.0f} ms")
    assert elapsed < WITHIN


async def test_revocation_reaches_two_gateways_within_a_second_without_redis(
    tmp_path: Path, upstream: Upstream, gateways: Callable[[Path], Any]
) -> None:
    config = write_config(tmp_path / "bastion.yaml", upstream)  # SQLite, default 0.5 s reads
    first, second = await gateways(config), await gateways(config)
    elapsed = await revoked_everywhere_after(config, [first, second])
    print(f"revoked everywhere after {elapsed * 1000:.0f} ms")
    assert elapsed < WITHIN


async def test_a_lost_announcement_is_caught_by_the_store_read(
    tmp_path: Path,
    upstream: Upstream,
    gateways: Callable[[Path], Any],
    redis_server_factory: Callable[..., Any],
) -> None:
    server = redis_server_factory()
    config = write_config(
        tmp_path / "bastion.yaml", upstream, redis={"url": server.url, "connect_timeout": "0.2s"}
    )
    first, second = await gateways(config), await gateways(config)
    server.kill()  # the revoke cannot be announced; the gateways read the store anyway
    elapsed = await revoked_everywhere_after(config, [first, second])
    assert elapsed < WITHIN + 0.5  # one read interval, plus the CLI's failed announcement
