"""A monitor on a fake clock, recording its alerts, for replaying attacks in simulated time."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bastion.config.loader import build_config
from bastion.config.models import BastionConfig
from bastion.observability.alerts.model import Alert
from bastion.observability.detect.assembly import build_monitor
from bastion.observability.detect.geoip import open_countries
from bastion.observability.detect.monitor import Monitor
from bastion.observability.events import MemorySink, SecurityEvent
from tests.observability.alerts.helpers import START, FakeClock

__all__ = ["START", "FakeClock", "Harness", "harness", "monitoring_config"]


def monitoring_config(**monitoring: Any) -> BastionConfig:
    return build_config({"monitoring": {"enabled": True, **monitoring}}, "test")


@dataclass
class Harness:
    monitor: Monitor
    clock: FakeClock
    events: MemorySink
    alerts: list[Alert] = field(default_factory=list)

    def of(self, detector: str) -> list[Alert]:
        return [a for a in self.alerts if a.detector == detector]

    def request(
        self,
        *,
        ip: str = "100.64.0.1",
        consumer: str | None = None,
        route: str = "api",
        path: str = "/items",
        status: int = 200,
        request_bytes: int = 0,
        response_bytes: int = 500,
    ) -> None:
        self.monitor.exchange(
            consumer=consumer,
            ip=ip,
            route=route,
            path=path,
            status=status,
            request_bytes=request_bytes,
            response_bytes=response_bytes,
        )

    def auth_failure(self, ip: str, consumer: str | None, key_id: str | None = None) -> None:
        fields = {"reason": "wrong_secret", "auth_method": "api_key"}
        if key_id is not None:
            fields["key_id"] = key_id
        if consumer is not None:
            fields["consumer"] = consumer
        self.monitor.event(
            SecurityEvent(
                "auth.invalid_credentials", "failure", self.clock(), guard="api_key",
                client_ip=ip, status=401, fields=fields,
            )
        )  # fmt: skip


def harness(config: BastionConfig | None = None, country_db: Path | None = None) -> Harness:
    """A monitor on a fake clock; the new-country detector only with ``country_db``."""
    if config is None:
        detectors = {"new_country": {"enabled": country_db is not None}}
        config = monitoring_config(detectors=detectors)
    clock = FakeClock()
    events = MemorySink()
    countries = open_countries(country_db) if country_db is not None else None
    monitor = build_monitor(config, events, clock=clock, countries=countries)
    made = Harness(monitor, clock, events)
    monitor.listeners.append(made.alerts.append)
    return made
