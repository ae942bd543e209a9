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

from bastion.assembly import build_events, build_gateway_chain
from bastion.config.models import BastionConfig
from bastion.control import fanout
from bastion.control.recent import RecentEvents, Tee, merged
from bastion.control.reload import ConfigSource
from bastion.engine import readiness
from bastion.engine.runtime import (
    announce,
    control_plane,
    on_sighup,
    reload_logged,
    snapshot_path,
    start_admin,
    stop_admin,
    stop_signals,
    stored_events,
)
from bastion.errors import ConfigError
from bastion.observability.assembly import event_redactor
from bastion.observability.events import EventSink, NullSink
from bastion.observability.traffic import TrafficSnapshot

logger = logging.getLogger("bastion.engine")

# A worker that dies this soon after starting, this many times in a row, means a broken setup
# (port taken, bad certificate): the supervisor gives up instead of restarting forever.
EARLY_EXIT_SECONDS = 2.0
MAX_EARLY_EXITS = 5
STARTUP_WAIT = 10.0


RELOAD_WAIT = 15.0


class Supervisor:
    def __init__(self, config: BastionConfig, source: ConfigSource | None = None) -> None:
        self.config = config
        self.source = source
        self.failed = asyncio.Event()
        self.workers: dict[int, tuple[asyncio.subprocess.Process, float]] = {}
        self.retired = TrafficSnapshot()
        self.stopping = False
        self.early_exits = 0
        self.generation = 0
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
        for stale in (
            path,
            fanout.events_path(self.config, pid),
            fanout.ack_path(self.config, pid),
            readiness.marker_path(self.config, pid),
        ):
            with contextlib.suppress(OSError):
                stale.unlink()

    def snapshot(self) -> TrafficSnapshot:
        merged = TrafficSnapshot()
        merged.merge(self.retired)
        for pid in list(self.workers):
            snapshot = _read(snapshot_path(self.config, pid))
            if snapshot is not None:
                merged.merge(snapshot)
        return merged

    def started(self) -> bool:
        """All workers run and have published a snapshot (which they do once they listen)."""
        if self.stopping or len(self.workers) != self.config.workers:
            return False
        return all(snapshot_path(self.config, pid).exists() for pid in self.workers)

    def ready(self) -> bool:
        """Started, and no worker says it cannot serve (:mod:`bastion.engine.readiness`)."""
        return self.started() and readiness.workers_ready(self.config, list(self.workers))

    async def _wait_ready(self) -> None:
        """Poll for the workers' first snapshots (files: nothing to await), up to STARTUP_WAIT."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STARTUP_WAIT
        while not self.started() and loop.time() < deadline and not self.failed.is_set():  # noqa: ASYNC110
            await asyncio.sleep(0.05)

    def _forward_reload(self) -> None:
        for process, _ in list(self.workers.values()):
            if process.returncode is None:
                process.send_signal(signal.SIGHUP)

    def recent(self, own: RecentEvents) -> RecentEvents:
        """Recent events of every worker and of the supervisor itself (admin calls)."""
        parts = fanout.worker_events(self.config, list(self.workers))
        return merged([*parts, own.export()], self.config.admin.recent_events, own.redactor)

    async def apply(self, new: BastionConfig) -> None:
        """A reload across workers: build the chain once here (what fails to build fails
        before any worker changes), then publish it, SIGHUP the workers and wait for each."""
        trial = build_gateway_chain(new, NullSink())
        await trial.close()
        self.generation += 1
        generation = self.generation
        fanout.publish_reload(self.config, generation, new)
        self.payload = new.model_dump_json().encode()  # a restarted worker starts with it
        self._forward_reload()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RELOAD_WAIT
        waiting = set(self.workers)
        problems: list[str] = []
        while waiting and loop.time() < deadline:
            for pid in list(waiting):
                if pid not in self.workers:
                    waiting.discard(pid)  # gone: its replacement starts with the new config
                    continue
                ack = fanout.acknowledgement(self.config, pid, generation)
                if ack is not None:
                    waiting.discard(pid)
                    if not ack.get("ok"):
                        problems.append(f"worker {pid}: {ack.get('error')}")
            await asyncio.sleep(0.02)
        problems += [f"worker {pid}: no answer within {RELOAD_WAIT:g}s" for pid in waiting]
        # The file holds the whole config (its secrets too): gone once the workers had it.
        with contextlib.suppress(OSError):
            (fanout.run_dir(self.config) / "reload.json").unlink()
        if problems:
            raise ConfigError("reload failed in some workers", problems)

    async def run(self) -> int:
        (self.config.state_dir / "run").mkdir(parents=True, exist_ok=True)
        # A reload left by an earlier run must never reach this run's workers.
        with contextlib.suppress(OSError):
            (fanout.run_dir(self.config) / "reload.json").unlink()
        stop = stop_signals()
        for _ in range(self.config.workers):
            await self.spawn()
        await self._wait_ready()
        own = RecentEvents(self.config.admin.recent_events, redactor=event_redactor(self.config))
        events: EventSink = Tee([build_events(self.config), own])
        plane = control_plane(
            self.config,
            self.source,
            events,
            self.apply,
            lambda: self.recent(own),
            self.snapshot,
            stored_events(self.config),
        )
        reloader = plane.reloader
        assert reloader is not None
        tasks: set[asyncio.Task[None]] = set()

        def hup() -> None:
            # A config reload; each worker also reloads its certificates on the SIGHUP it gets
            # (and the TLS ones whatever the reload's outcome).
            if self.config.tls.enabled:
                self._forward_reload()
            task = asyncio.get_running_loop().create_task(reload_logged(reloader))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        on_sighup(hup)
        admin = None
        if self.config.admin.enabled:
            admin = await start_admin(self.config, events, self.snapshot, self.ready, plane)
        admin_text = f", admin on http://{self.config.admin.listen}" if admin else ""
        scheme = "https" if self.config.tls.enabled else "http"
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
        for task in list(tasks):
            task.cancel()
        if admin is not None:
            await stop_admin(admin, plane)
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


async def supervise(config: BastionConfig, source: ConfigSource | None = None) -> int:
    return await Supervisor(config, source).run()
