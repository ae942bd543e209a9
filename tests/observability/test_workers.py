"""Several worker processes: one event file shared without a torn line, and the supervisor's
/metrics summing every worker's event counters."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import httpx

from tests.engine.upstream_app import start_upstream
from tests.observability.helpers import check_line
from tests.ports import free_port

BASTION = str(Path(sys.executable).parent / "bastion")


async def test_two_workers_share_the_file_and_the_metrics(tmp_path: Path) -> None:
    upstream = await start_upstream()
    listen, admin = free_port(), free_port()
    config = tmp_path / "bastion.yaml"
    config.write_text(
        f"""
workers: 2
routes:
  - name: api
    upstream: {upstream.url}
    path_prefix: /api
state_dir: {tmp_path / "state"}
timeouts: {{shutdown_grace: 2s}}
events: {{sink: file, path: {tmp_path / "logs" / "events.jsonl"}}}
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
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stderr is not None
        while b"listening on" not in (
            line := await asyncio.wait_for(process.stderr.readline(), 20)
        ):
            assert line, "the gateway exited"

        async def client_run(n: int) -> None:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{listen}") as client:
                for i in range(10):
                    path = f"/api/{n}/{i}" if i % 2 else f"/nowhere/{n}/{i}"
                    await client.get(path)

        await asyncio.gather(*(client_run(n) for n in range(8)))  # 8 connections, 80 requests
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{admin}") as client:
            for _ in range(50):  # workers publish their counters every second
                metrics = (await client.get("/metrics")).text
                if (
                    'bastion_security_events_total{action="route.not_found",outcome="failure"} 40.0'
                    in metrics
                ):
                    break
                await asyncio.sleep(0.1)
        assert 'bastion_security_events_total{action="route.not_found",outcome="failure"} 40.0' in (
            metrics
        )
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 20) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        assert upstream.server is not None
        upstream.server.close()
    docs = [
        check_line(line) for line in (tmp_path / "logs" / "events.jsonl").read_bytes().splitlines()
    ]
    access = [d for d in docs if d["event"]["dataset"] == "bastion.access"]
    security = [d for d in docs if d["event"]["dataset"] == "bastion.security"]
    assert len(access) == 80
    assert len(security) == 40
    assert len({d["http"]["request"]["id"] for d in access}) == 80
