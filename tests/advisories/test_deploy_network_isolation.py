"""Regression: in the shipped compose deployment the upstream application shares no network with
Redis or PostgreSQL. On one default network a compromised upstream could write bastion's rate
limit, lockout and detector state in Redis (no password there) and reach the key database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

COMPOSE = Path(__file__).parents[2] / "deploy" / "compose.yaml"


def networks(service: dict[str, Any]) -> set[str]:
    found = service.get("networks", ["default"])
    return set(found if isinstance(found, list) else found.keys())


def test_the_upstream_cannot_reach_bastions_state() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    state = networks(services["redis"]) | networks(services["postgres"])
    assert networks(services["upstream"]).isdisjoint(state)
    gateways = [name for name in services if name.startswith("gateway-")]
    assert gateways
    for name in gateways:  # every gateway reaches both its upstream and its state
        assert networks(services[name]) & networks(services["upstream"])
        assert networks(services[name]) & state
    assert networks(services["migrate"]) & networks(services["postgres"])
