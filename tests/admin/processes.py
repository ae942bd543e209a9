"""A gateway as users run it (``bastion serve --config``), and a bounded loopback load."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

BASTION = str(Path(sys.executable).parent / "bastion")


def write(path: Path, doc: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(doc))


@asynccontextmanager
async def serve(config: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    process = await asyncio.create_subprocess_exec(
        BASTION, "serve", "--config", str(config), stderr=asyncio.subprocess.PIPE
    )
    assert process.stderr is not None
    try:
        seen: list[bytes] = []
        async with asyncio.timeout(20):
            while not seen or b"listening on" not in seen[-1]:
                line = await process.stderr.readline()
                assert line, b"".join(seen)
                seen.append(line)
        yield process
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


async def stderr_line(process: asyncio.subprocess.Process, needle: bytes) -> bytes:
    assert process.stderr is not None
    async with asyncio.timeout(20):
        while True:
            line = await process.stderr.readline()
            assert line, "the gateway closed stderr"
            if needle in line:
                return line


@dataclass
class Load:
    """``clients`` keep-alive clients sending GETs to ``url`` until stopped; every outcome."""

    url: str
    clients: int = 6
    statuses: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.statuses.values()) + len(self.errors)

    async def _client(self) -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            while not self.stop.is_set():
                try:
                    r = await client.get(self.url)
                    self.statuses[r.status_code] = self.statuses.get(r.status_code, 0) + 1
                except httpx.HTTPError as exc:
                    self.errors.append(type(exc).__name__)

    def start(self) -> None:
        self.tasks = [asyncio.create_task(self._client()) for _ in range(self.clients)]

    async def finish(self) -> None:
        self.stop.set()
        await asyncio.gather(*self.tasks)
