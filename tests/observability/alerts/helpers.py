"""Alerts to deliver, a fake clock and a sink that holds deliveries until released."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import ClassVar

from bastion.observability.alerts.model import Alert, DeliveryError

START = 1_800_000_000.0


@dataclass
class FakeClock:
    now: float = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def alert(key: str = "spike:ip:203.0.113.9:401", at: float = START, **evidence: object) -> Alert:
    return Alert(
        detector="spike",
        key=key,
        summary="401 spike from ip 203.0.113.9: 40 in 60 s (baseline 0.0)",
        timestamp=at,
        severity="warning",
        evidence=evidence or {"ip": "203.0.113.9", "count": 40, "status": "401"},
    )


@dataclass
class GateSink:
    """Blocks every delivery until ``gate`` is set; records what it delivered."""

    kind: ClassVar[str] = "gate"
    name: str = "gate"
    gate: threading.Event = field(default_factory=threading.Event)
    entered: threading.Event = field(default_factory=threading.Event)
    delivered: list[Alert] = field(default_factory=list)

    def deliver(self, alert: Alert) -> None:
        self.entered.set()
        self.gate.wait(10)
        self.delivered.append(alert)


@dataclass
class FlakySink:
    """Fails its first ``failures`` deliveries."""

    kind: ClassVar[str] = "flaky"
    name: str = "flaky"
    failures: int = 0
    calls: int = 0
    delivered: list[Alert] = field(default_factory=list)

    def deliver(self, alert: Alert) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise DeliveryError("flaky sink refused")
        self.delivered.append(alert)
