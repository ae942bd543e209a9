"""``bastion serve``: one process, or a supervisor with N worker processes on one port.

With ``workers: 1`` the process serves the public listener and the admin listener itself. With
more, a supervisor starts N workers (``python -m bastion.engine.worker``, config on stdin) that
each bind the public port with ``SO_REUSEPORT`` so the kernel spreads connections; the supervisor
serves the admin listener, merges the traffic snapshots the workers write every second under
``state_dir/run/``, restarts a worker that crashed, and on SIGTERM forwards it and waits.

SIGTERM / SIGINT: readiness turns false first, then listeners stop accepting, in-flight requests
get ``timeouts.shutdown_grace`` to finish, and the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from bastion.assembly import build_events, build_gateway_chain
from bastion.config.models import BastionConfig
from bastion.engine.server import GatewayServer
from bastion.observability.events import EventSink
from bastion.observability.traffic import TrafficSnapshot, TrafficStats
from bastion.pipeline.chain import GuardChain
from bastion.pipeline.request import Request
from bastion.pipeline.response import FunctionEndpoint, Response
from bastion.pipeline.routing import Route, Router
from bastion.tls.runtime import TLSRuntime

logger = logging.getLogger("bastion.engine")

SNAPSHOT_INTERVAL = 1.0


def install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def run(config: BastionConfig) -> int:
    """Serve until SIGTERM/SIGINT; the process exit code."""
    install_uvloop()
    if config.workers > 1:
        from bastion.engine.supervisor import supervise

        return asyncio.run(supervise(config))
    return asyncio.run(serve(config))


def admin_routes(
    config: BastionConfig, snapshot: Callable[[], TrafficSnapshot], ready: Callable[[], bool]
) -> list[Route]:
    """The admin endpoints (from :mod:`bastion.admin`), or health/readiness if it is absent."""
    try:
        from bastion.admin import endpoints
    except ImportError:  # pragma: no cover - bastion.admin ships with bastion
        return fallback_admin_routes(snapshot, ready)
    return endpoints(config, snapshot, ready)


def fallback_admin_routes(
    snapshot: Callable[[], TrafficSnapshot], ready: Callable[[], bool]
) -> list[Route]:
    json_type = (("content-type", "application/json"),)

    async def healthz(request: Request) -> Response:
        return Response(200, json_type, b'{"status":"ok"}')

    async def readyz(request: Request) -> Response:
        if ready():
            return Response(200, json_type, b'{"status":"ready"}')
        return Response(503, json_type, b'{"status":"not ready"}')

    async def traffic(request: Request) -> Response:
        return Response(200, json_type, json.dumps(asdict(snapshot())).encode())

    return [
        Route(name="healthz", path_prefix="/healthz", endpoint=FunctionEndpoint(healthz)),
        Route(name="readyz", path_prefix="/readyz", endpoint=FunctionEndpoint(readyz)),
        Route(name="traffic", path_prefix="/traffic", endpoint=FunctionEndpoint(traffic)),
    ]


async def start_admin(
    config: BastionConfig,
    events: EventSink,
    snapshot: Callable[[], TrafficSnapshot],
    ready: Callable[[], bool],
) -> GatewayServer:
    chain = GuardChain([Router(admin_routes(config, snapshot, ready))], events)
    admin = GatewayServer(config=config, chain=chain, listen=config.admin.listen)
    await admin.start()
    return admin


def stop_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


def announce(text: str) -> None:
    print(f"bastion: {text}", file=sys.stderr, flush=True)


def snapshot_path(config: BastionConfig, pid: int) -> Path:
    return config.state_dir / "run" / f"worker-{pid}.json"


def write_snapshot(path: Path, snapshot: TrafficSnapshot) -> None:
    """Atomically replace ``path`` with ``snapshot`` as JSON (readers never see half a file)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(snapshot)))
    os.replace(tmp, path)


async def serve(config: BastionConfig, *, worker: bool = False) -> int:
    """One serving process: the public listener, plus the admin listener unless a worker."""
    events = build_events(config)
    stats = TrafficStats()
    stats.events = events
    chain = build_gateway_chain(config, events)
    await chain.start()
    tls = TLSRuntime.create(config, events)
    public = GatewayServer(
        config=config,
        chain=chain,
        listen=config.listen,
        stats=stats,
        reuse_port=worker,
        ssl=tls.context if tls is not None else None,
        access=events.access if config.events.access and events.active else None,
    )
    stop = stop_signals()
    await public.start()
    if tls is not None:
        await tls.start(public.port, reuse_port=worker)
    ready = True
    admin: GatewayServer | None = None
    if config.admin.enabled and not worker:
        admin = await start_admin(config, events, stats.snapshot, lambda: ready)
    if worker:
        publisher = asyncio.create_task(_publish(config, stats, stop))
    else:
        where = f"{public.context.scheme}://{config.listen.host}:{public.port}"
        admin_text = f", admin on http://{config.admin.listen}" if admin else ""
        announce(f"gateway listening on {where}{admin_text} (pid {os.getpid()})")
        if tls is not None:
            announce(tls.describe())
    await stop.wait()
    ready = False
    if admin is not None:
        await asyncio.sleep(0)  # readiness is false before the public port stops accepting
    await public.shutdown(config.timeouts.shutdown_grace)
    if tls is not None:
        await tls.close(config.timeouts.shutdown_grace)
    if worker:
        publisher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await publisher
        write_snapshot(snapshot_path(config, os.getpid()), stats.snapshot())
    if admin is not None:
        await admin.shutdown(1.0)
    await chain.close()
    close = getattr(events, "close", None)
    if callable(close):
        close()
    return 0


async def _publish(config: BastionConfig, stats: TrafficStats, stop: asyncio.Event) -> None:
    """Publish this worker's counters every second; stop serving if the supervisor is gone
    (a worker must never outlive it, holding the port with nobody to stop it)."""
    path = snapshot_path(config, os.getpid())
    path.parent.mkdir(parents=True, exist_ok=True)
    parent = os.getppid()
    while True:
        if os.getppid() != parent:
            stop.set()
            return
        try:
            write_snapshot(path, stats.snapshot())
        except OSError as exc:
            logger.warning("cannot write traffic snapshot %s: %s", path, exc)
        await asyncio.sleep(SNAPSHOT_INTERVAL)


if __name__ == "__main__":  # python -m bastion.engine.runtime CONFIG.json (tests, debugging)
    sys.exit(run(BastionConfig.model_validate_json(Path(sys.argv[1]).read_bytes())))
