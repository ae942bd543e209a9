"""Regression: the compose deployment bound the admin listener to 0.0.0.0 on a network the
upstream shares with the gateways, so the upstream (or anything that compromised it) reached
/metrics, the dashboard's sign-in and the admin API. The compose config keeps it on loopback;
the container's health check reads /readyz from inside."""

from __future__ import annotations

from pathlib import Path

import yaml

from bastion.config.loader import build_config
from bastion.config.types import HostPort

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_compose_admin_listener_is_loopback_only() -> None:
    raw = yaml.safe_load((DEPLOY / "bastion.yaml").read_text())
    config = build_config(raw, "deploy/bastion.yaml")
    assert config.admin.listen.host == "127.0.0.1"
    compose = (DEPLOY / "compose.yaml").read_text()
    assert f"http://{HostPort('127.0.0.1', config.admin.listen.port)}/readyz" in compose
