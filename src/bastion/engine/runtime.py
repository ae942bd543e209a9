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
from collections.abc import Callable, Coroutine
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bastion.assembly import build_events, build_gateway_chain
from bastion.config.models import BastionConfig
from bastion.control import fanout
from bastion.control.audit import SIGNAL_ACTOR, AuditLog, audit_path
from bastion.control.recent import EventSource, RecentEvents, Tee
from bastion.control.reload import Applier, ConfigSource, Reloader
from bastion.control.swap import LiveChain
from bastion.engine import readiness
from bastion.engine.server import GatewayServer
from bastion.errors import ConfigError, describe
from bastion.observability.assembly import event_redactor
from bastion.observability.events import EventSink
from bastion.observability.traffic import TrafficSnapshot, TrafficStats
from bastion.pipeline.chain import GuardChain
from bastion.pipeline.request import Request
from bastion.pipeline.response import FunctionEndpoint, Response
from bastion.pipeline.routing import Route, Router
from bastion.tls.runtime import TLSRuntime

if TYPE_CHECKING:
    from bastion.admin.plane import AdminPlane

logger = logging.getLogger("bastion.engine")

SNAPSHOT_INTERVAL = 1.0


def install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def run(config: BastionConfig, source: ConfigSource | None = None) -> int:
    """Serve until SIGTERM/SIGINT; the process exit code. ``source`` is where ``config`` came
    from, re-read on SIGHUP or ``POST /admin/config/reload`` (without it, reload is refused)."""
    install_uvloop()
    if config.workers > 1:
        from bastion.engine.supervisor import supervise

        return asyncio.run(supervise(config, source))
    return asyncio.run(serve(config, source=source))


def admin_routes(
    config: BastionConfig,
    snapshot: Callable[[], TrafficSnapshot],
    ready: Callable[[], bool],
    plane: AdminPlane | None = None,
) -> list[Route]:
    """The admin endpoints (from :mod:`bastion.admin`), or health/readiness if it is absent."""
    try:
        from bastion.admin import endpoints
    except ImportError:  # pragma: no cover - bastion.admin ships with bastion
        return fallback_admin_routes(snapshot, ready)
    return endpoints(config, snapshot, ready, plane=plane)


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
    plane: AdminPlane | None = None,
) -> GatewayServer:
    chain = GuardChain([Router(admin_routes(config, snapshot, ready, plane))], events)
    admin = GatewayServer(config=config, chain=chain, listen=config.admin.listen)
    await admin.start()
    if plane is not None:
        plane.start()
    return admin


async def stop_admin(admin: GatewayServer, plane: AdminPlane | None) -> None:
    if plane is not None:
        await plane.close()
    await admin.shutdown(1.0)


def control_plane(
    config: BastionConfig,
    source: ConfigSource | None,
    events: EventSink,
    apply: Applier,
    recent: Callable[[], RecentEvents],
    snapshot: Callable[[], TrafficSnapshot],
    stored: EventSource | None = None,
) -> AdminPlane:
    """The audit log, the reloader and the admin plane of a process serving the admin port.
    ``stored``: the event store the admin API's events query reads (else the ring)."""
    from bastion.admin.plane import AdminPlane

    audit = AuditLog(audit_path(config), events)
    reloader = Reloader(config, source or ConfigSource(None), apply, audit)
    return AdminPlane(
        config=lambda: reloader.config,
        audit=audit,
        recent=recent,
        snapshot=snapshot,
        reloader=reloader,
        event_source=None if stored is None else (lambda: stored),
    )


def stored_events(config: BastionConfig) -> EventSource | None:
    """The event store as the admin API's events source, when ``events.store`` is on."""
    if not config.events.store.enabled:
        return None
    from bastion.control.stored import StoredEvents
    from bastion.store.events import open_event_store

    return StoredEvents(
        lambda: open_event_store(config.state_dir, config.postgres.dsn, config.postgres.db_schema)
    )


def on_sighup(handler: Callable[[], None]) -> None:
    """SIGHUP runs ``handler`` (a config reload; it also asks TLS to reload certificates)."""
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, handler)


def tls_reload(tls: TLSRuntime | None) -> None:
    if tls is not None and tls.server.reload_requested is not None:
        tls.server.reload_requested.set()


async def reload_logged(reloader: Reloader) -> None:
    result = await reloader.reload(SIGNAL_ACTOR)
    if result.ok:
        announce(f"config reloaded (generation {result.generation}, {result.message})")
    else:
        announce("config reload refused; the running config stays: " + "; ".join(result.problems))


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


async def serve(
    config: BastionConfig, *, worker: bool = False, source: ConfigSource | None = None
) -> int:
    """One serving process: the public listener, plus the admin listener unless a worker."""
    recent = RecentEvents(config.admin.recent_events, redactor=event_redactor(config))
    writer = build_events(config)
    events: EventSink = Tee([writer, recent])
    stats = TrafficStats()
    stats.events = writer
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
        # access records only when some sink writes them (the event store keeps security events)
        access=writer.access if config.events.access and writer.sinks else None,
    )
    stop = stop_signals()
    await public.start()
    if tls is not None:
        await tls.start(public.port, reuse_port=worker)
        await asyncio.sleep(0)  # TLS's watcher installs its SIGHUP handler; ours replaces it
    live = LiveChain(public, config, events)
    ready = True
    admin: GatewayServer | None = None
    tasks: set[asyncio.Task[None]] = set()
    plane: AdminPlane | None = None

    def spawn(work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    if worker:
        generation = [0]
        one_at_a_time = asyncio.Lock()

        async def apply_pending() -> None:
            async with one_at_a_time:
                await _apply_pending(config, live, generation)

        def worker_hup() -> None:
            tls_reload(tls)
            spawn(apply_pending())

        on_sighup(worker_hup)
        publisher = asyncio.create_task(_publish(config, stats, stop, recent, live))
    else:
        plane = control_plane(
            config,
            source,
            events,
            live.apply,
            lambda: recent,
            stats.snapshot,
            stored_events(config),
        )
        reloader = plane.reloader
        assert reloader is not None

        def hup() -> None:
            tls_reload(tls)
            spawn(reload_logged(reloader))

        on_sighup(hup)
        if config.admin.enabled:
            admin = await start_admin(
                config,
                events,
                stats.snapshot,
                lambda: ready and not readiness.unready_reasons(live.chain),
                plane,
            )
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
        await stop_admin(admin, plane)
    for task in list(tasks):
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await live.close()
    await live.chain.close()
    close = getattr(events, "close", None)
    if callable(close):
        close()
    return 0


async def _apply_pending(config: BastionConfig, live: LiveChain, generation: list[int]) -> None:
    """A worker's side of a reload: apply what the supervisor published, then say how it went."""
    pending = fanout.pending_reload(config, generation[0])
    if pending is None:
        return
    number, new = pending
    error: str | None = None
    try:
        await live.apply(new)
    except ConfigError as exc:
        error = str(exc)
    except Exception as exc:
        error = describe(exc)
    else:
        generation[0] = number
    fanout.acknowledge(config, number, error)


async def _publish(
    config: BastionConfig,
    stats: TrafficStats,
    stop: asyncio.Event,
    recent: RecentEvents,
    live: LiveChain,
) -> None:
    """Publish this worker's counters (and recent events, when new ones came) every second;
    stop serving if the supervisor is gone (a worker must never outlive it, holding the port
    with nobody to stop it)."""
    path = snapshot_path(config, os.getpid())
    path.parent.mkdir(parents=True, exist_ok=True)
    parent = os.getppid()
    published = -1
    while True:
        if os.getppid() != parent:
            stop.set()
            return
        try:
            readiness.publish(config, live.chain)  # before the first snapshot says "started"
            write_snapshot(path, stats.snapshot())
            if recent.emitted != published:
                published = recent.emitted
                fanout.publish_events(config, recent.export())
        except OSError as exc:
            logger.warning("cannot write traffic snapshot %s: %s", path, exc)
        await asyncio.sleep(SNAPSHOT_INTERVAL)


if __name__ == "__main__":  # python -m bastion.engine.runtime CONFIG.json (tests, debugging)
    _path = Path(sys.argv[1])
    sys.exit(run(BastionConfig.model_validate_json(_path.read_bytes()), ConfigSource(_path)))
