"""The supervisor of ``workers > 1``: starts, watches, restarts and stops worker processes, and
serves the admin listener with the merged traffic of all workers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path

from bastion.assembly import build_events
from bastion.config.models import BastionConfig
from bastion.engine.runtime import announce, snapshot_path, start_admin, stop_signals
from bastion.observability.traffic import TrafficSnapshot

logger = logging.getLogger("bastion.engine")

# A worker that dies this soon after starting, this many times in a row, means a broken setup
# (port taken, bad certificate): the supervisor gives up instead of restarting forever.
EARLY_EXIT_SECONDS = 2.0
MAX_EARLY_EXITS = 5
STARTUP_WAIT = 10.0


class Supervisor:
    def __init__(self, config: BastionConfig) -> None:
        self.config = config
        self.failed = asyncio.Event()
        self.workers: dict[int, tuple[asyncio.subprocess.Process, float]] = {}
        self.retired = TrafficSnapshot()
        self.stopping = False
        self.early_exits = 0
        self.payload = config.model_dump_json().encode()

    async def spawn(self) -> None:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bastion.engine.worker", stdin=asyncio.subprocess.PIPE
        )
        assert process.stdin is not None
        process.stdin.write(self.payload)
        await process.stdin.drain()
        process.stdin.close()
        self.workers[process.pid] = (process, time.monotonic())
        asyncio.get_running_loop().create_task(self._watch(process))

    async def _watch(self, process: asyncio.subprocess.Process) -> None:
        code = await process.wait()
        _, started = self.workers.pop(process.pid, (process, 0.0))
        self._retire(process.pid)
        if self.stopping:
            return
        logger.error("worker %d exited with %s; restarting it", process.pid, code)
        self.early_exits = (
            self.early_exits + 1 if time.monotonic() - started < EARLY_EXIT_SECONDS else 0
        )
        if self.early_exits >= MAX_EARLY_EXITS:
            announce("workers keep failing at start; stopping")
            self.failed.set()
            return
        await self.spawn()

    def _retire(self, pid: int) -> None:
        """Keep a gone worker's counters (totals must not go down), drop its gauges."""
        path = snapshot_path(self.config, pid)
        snapshot = _read(path)
        if snapshot is not None:
            snapshot.connections_open = 0
            snapshot.in_flight = 0
            self.retired.merge(snapshot)
        with contextlib.suppress(OSError):
            path.unlink()

    def snapshot(self) -> TrafficSnapshot:
        merged = TrafficSnapshot()
        merged.merge(self.retired)
        for pid in list(self.workers):
            snapshot = _read(snapshot_path(self.config, pid))
            if snapshot is not None:
                merged.merge(snapshot)
        return merged

    def ready(self) -> bool:
        """All workers run and have published a snapshot (which they do once they listen)."""
        if self.stopping or len(self.workers) != self.config.workers:
            return False
        return all(snapshot_path(self.config, pid).exists() for pid in self.workers)

    async def _wait_ready(self) -> None:
        """Poll for the workers' first snapshots (files: nothing to await), up to STARTUP_WAIT."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STARTUP_WAIT
        while not self.ready() and loop.time() < deadline and not self.failed.is_set():  # noqa: ASYNC110
            await asyncio.sleep(0.05)

    def _forward_reload(self) -> None:
        for process, _ in list(self.workers.values()):
            if process.returncode is None:
                process.send_signal(signal.SIGHUP)

    async def run(self) -> int:
        (self.config.state_dir / "run").mkdir(parents=True, exist_ok=True)
        stop = stop_signals()
        for _ in range(self.config.workers):
            await self.spawn()
        await self._wait_ready()
        events = build_events(self.config)
        admin = None
        if self.config.admin.enabled:
            admin = await start_admin(self.config, events, self.snapshot, self.ready)
        admin_text = f", admin on http://{self.config.admin.listen}" if admin else ""
        scheme = "https" if self.config.tls.enabled else "http"
        if self.config.tls.enabled:
            # SIGHUP reloads certificates: each worker reloads its own (they watch the files too).
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._forward_reload)
        announce(
            f"gateway listening on {scheme}://{self.config.listen} with {self.config.workers}"
            f" workers{admin_text} (supervisor pid {os.getpid()})"
        )
        stopped = asyncio.create_task(stop.wait())
        failed = asyncio.create_task(self.failed.wait())
        await asyncio.wait({stopped, failed}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        failed.cancel()
        self.stopping = True
        await self._stop_workers()
        if admin is not None:
            await admin.shutdown(1.0)
        close = getattr(events, "close", None)
        if callable(close):
            close()
        return 1 if self.failed.is_set() else 0

    async def _stop_workers(self) -> None:
        processes = [process for process, _ in self.workers.values()]
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        grace = self.config.timeouts.shutdown_grace + 5.0
        try:
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in processes)), grace)
        except TimeoutError:
            for process in processes:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
        await asyncio.sleep(0)


def _read(path: Path) -> TrafficSnapshot | None:
    try:
        return TrafficSnapshot(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


async def supervise(config: BastionConfig) -> int:
    return await Supervisor(config).run()
