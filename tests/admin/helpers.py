"""Admin test machinery: configs with admin tokens, and an in-process gateway whose admin
listener serves the real admin API and dashboard on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bastion.admin.plane import AdminPlane
from bastion.admin.tokens import generate, token_hash
from bastion.assembly import build_gateway_chain
from bastion.config.models import BastionConfig
from bastion.config.types import HostPort
from bastion.control.recent import RecentEvents, Tee
from bastion.control.swap import LiveChain
from bastion.engine.runtime import control_plane, start_admin, stop_admin
from bastion.engine.server import GatewayServer
from bastion.observability.events import MemorySink
from bastion.observability.traffic import TrafficStats
from tests.engine.helpers import FAST_TIMEOUTS
from tests.ports import free_port

ROLES = {"viewer": "read-only", "ops": "operator", "root": "admin"}
SIGNING = {"issuer": "https://gateway.test", "audiences": ["https://api.test"]}


def tokens() -> dict[str, str]:
    """A fresh token per role name."""
    return {name: generate() for name in ROLES}


def admin_section(secrets: dict[str, str], listen: str | None = None) -> dict[str, Any]:
    return {
        "listen": listen or f"127.0.0.1:{free_port()}",
        "tokens": [
            {"name": name, "role": ROLES[name], "token_hash": token_hash(secret)}
            for name, secret in secrets.items()
        ],
    }


def config_doc(
    tmp_path: Path, upstream_url: str, secrets: dict[str, str], **overrides: Any
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "listen": f"127.0.0.1:{free_port()}",
        "routes": [{"name": "api", "upstream": upstream_url, "auth": {"require": "required"}}],
        "admin": admin_section(secrets),
        "events": {"sink": "none"},
        "state_dir": str(tmp_path / "state"),
        "timeouts": FAST_TIMEOUTS,
        "auth": {"tokens": {"signing": SIGNING}},
    }
    doc.update(overrides)
    return doc


@dataclass
class Running:
    public: GatewayServer
    admin: GatewayServer
    plane: AdminPlane
    recent: RecentEvents
    sink: MemorySink

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.public.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin.port}"


@asynccontextmanager
async def running(config: BastionConfig) -> AsyncIterator[Running]:
    """The public listener and the admin listener of one process, as ``serve`` wires them."""
    (config.state_dir).mkdir(parents=True, exist_ok=True)
    recent = RecentEvents(config.admin.recent_events)
    sink = MemorySink()
    events = Tee([sink, recent])
    stats = TrafficStats()
    chain = build_gateway_chain(config, events)
    await chain.start()
    public = GatewayServer(config=config, chain=chain, listen=HostPort("127.0.0.1", 0), stats=stats)
    await public.start()
    live = LiveChain(public, config, events)
    plane = control_plane(config, None, events, live.apply, lambda: recent, stats.snapshot)
    admin = await start_admin(config, events, stats.snapshot, lambda: True, plane)
    try:
        yield Running(public, admin, plane, recent, sink)
    finally:
        await stop_admin(admin, plane)
        await public.shutdown(1.0)
        await live.close()
        await live.chain.close()
