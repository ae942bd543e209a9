"""The serving runtime in real processes: one process, N workers with a supervisor, and a 100 MB
upload streamed with bounded gateway memory."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.engine.helpers import FAST_TIMEOUTS
from tests.engine.upstream_app import Upstream
from tests.ports import free_port


@asynccontextmanager
async def gateway_process(
    tmp_path: Path, upstream_url: str, **overrides: Any
) -> AsyncIterator[tuple[asyncio.subprocess.Process, dict[str, Any]]]:
    config: dict[str, Any] = {
        "listen": f"127.0.0.1:{free_port()}",
        "routes": [{"name": "api", "upstream": upstream_url}],
        "admin": {"enabled": True, "listen": f"127.0.0.1:{free_port()}"},
        "events": {"sink": "none"},
        "state_dir": str(tmp_path / "state"),
        "timeouts": {**FAST_TIMEOUTS, "upstream_response": 5, "shutdown_grace": 3},
        **overrides,
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bastion.engine.runtime", str(path), stderr=asyncio.subprocess.PIPE
    )
    assert process.stderr is not None
    try:
        # Log lines may come first; the gateway is ready once it says where it listens. A
        # failure here must still stop the process (the finally below), never leak it.
        seen: list[bytes] = []
        async with asyncio.timeout(15):
            while not seen or b"listening on" not in seen[-1]:
                line = await process.stderr.readline()
                assert line, b"".join(seen)
                seen.append(line)
        yield process, config
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_single_process_serves_admin_and_drains_on_sigterm(
    upstream: Upstream, tmp_path: Path
) -> None:
    async with gateway_process(tmp_path, upstream.url) as (process, config):
        base = f"http://{config['listen']}"
        admin = f"http://{config['admin']['listen']}"
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{base}/x")).status_code == 200
            assert (await client.get(f"{admin}/healthz")).status_code == 200
            assert (await client.get(f"{admin}/readyz")).status_code == 200
            metrics = await client.get(f"{admin}/metrics")
            assert metrics.status_code == 200
            in_flight = asyncio.create_task(client.get(f"{base}/slow?0.5"))
            await asyncio.sleep(0.2)
            process.send_signal(signal.SIGTERM)
            r = await in_flight
            assert r.status_code == 200
        assert await asyncio.wait_for(process.wait(), 10) == 0


async def test_workers_share_port_restart_and_stop(upstream: Upstream, tmp_path: Path) -> None:
    async with gateway_process(tmp_path, upstream.url, workers=2) as (process, config):
        base = f"http://{config['listen']}"
        admin = f"http://{config['admin']['listen']}"
        async with httpx.AsyncClient() as client:
            for _ in range(3):  # workers are ready shortly after the supervisor's line
                if (await client.get(f"{admin}/readyz")).status_code == 200:
                    break
                await asyncio.sleep(0.5)
            for _ in range(40):
                assert (
                    await client.get(f"{base}/x", headers={"connection": "close"})
                ).status_code == 200
            run_dir = Path(config["state_dir"]) / "run"
            await asyncio.sleep(1.5)  # workers publish snapshots every second
            pids = sorted(int(p.stem.split("-")[1]) for p in run_dir.glob("worker-*.json"))
            assert len(pids) == 2
            metrics = (await client.get(f"{admin}/metrics")).text
            assert "40" in metrics
            os.kill(pids[0], signal.SIGKILL)
            for _ in range(40):
                await asyncio.sleep(0.25)
                now = sorted(int(p.stem.split("-")[1]) for p in run_dir.glob("worker-*.json"))
                if len(now) == 2 and pids[0] not in now:
                    break
            assert len(now) == 2
            assert pids[0] not in now
            assert (await client.get(f"{base}/x")).status_code == 200
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 15) == 0
        for pid in now:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                continue
            raise AssertionError(f"worker {pid} survived the supervisor")


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


async def test_100mb_upload_streams_with_bounded_memory(upstream: Upstream, tmp_path: Path) -> None:
    total = 100 * 1024 * 1024
    async with gateway_process(
        tmp_path,
        upstream.url,
        admin={"enabled": False},
        timeouts={**FAST_TIMEOUTS, "upstream_response": 30},
    ) as (process, config):
        host, port = config["listen"].split(":")
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"http://{config['listen']}/warm")).status_code == 200
        before = _peak_rss_kib(process.pid)
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % total)
        block = b"u" * (1024 * 1024)
        for _ in range(total // len(block)):
            writer.write(block)
            await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        body = json.loads(await reader.readexactly(length))
        writer.close()
        assert body["body_bytes"] == total
        growth_mib = (_peak_rss_kib(process.pid) - before) / 1024
        assert growth_mib < 20, f"gateway peak RSS grew by {growth_mib:.1f} MiB"


async def test_100mb_download_streams_with_bounded_memory(
    upstream: Upstream, tmp_path: Path
) -> None:
    total = 100 * 1024 * 1024
    async with gateway_process(tmp_path, upstream.url, admin={"enabled": False}) as (
        process,
        config,
    ):
        host, port = config["listen"].split(":")
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"http://{config['listen']}/warm")).status_code == 200
        before = _peak_rss_kib(process.pid)
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /big?%d HTTP/1.1\r\nHost: a\r\n\r\n" % total)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        assert b"content-length: %d" % total in head
        received = 0
        while received < total:
            chunk = await asyncio.wait_for(reader.read(1024 * 1024), 30)
            assert chunk
            received += len(chunk)
            if received < 8 * 1024 * 1024:
                await asyncio.sleep(0.01)  # a slow reader first: the gateway must not buffer
        writer.close()
        growth_mib = (_peak_rss_kib(process.pid) - before) / 1024
        assert growth_mib < 20, f"gateway peak RSS grew by {growth_mib:.1f} MiB"
