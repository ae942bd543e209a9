"""A real gateway (the engine on a loopback port) with the chain the config assembles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bastion.assembly import build_gateway_chain
from bastion.config.models import BastionConfig
from bastion.config.types import HostPort
from bastion.engine.server import GatewayServer
from bastion.observability.events import MemorySink
from bastion.observability.traffic import TrafficStats
from tests.engine.helpers import FAST_TIMEOUTS


def gateway_config(spec: Path, upstream_url: str, **overrides: Any) -> BastionConfig:
    data: dict[str, Any] = {
        "openapi": str(spec),
        "routes": [{"name": "api", "upstream": upstream_url}],
        "validation": {"enabled": True},
        "timeouts": FAST_TIMEOUTS,
        "admin": {"enabled": False},
        "events": {"sink": "none"},
    }
    data.update(overrides)
    return BastionConfig.model_validate(data)


async def start_validating_gateway(
    config: BastionConfig, events: MemorySink | None = None
) -> GatewayServer:
    chain = build_gateway_chain(config, events or MemorySink())
    server = GatewayServer(
        config=config, chain=chain, listen=HostPort("127.0.0.1", 0), stats=TrafficStats()
    )
    await server.start()
    return server
