"""Security events: one per decision that matters, in Elastic Common Schema field names.

An event is built on the hot path from values the request view already holds (no header
decoding, no secret ever: guards pass only redacted fields). Sinks must not block the caller.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from bastion.pipeline.request import Request


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    """One security decision. ``action`` is the stable code (``auth.invalid_token``)."""

    action: str
    outcome: str  # "success" | "failure" | "unknown" (ECS event.outcome)
    timestamp: float
    guard: str = ""
    request_id: str = ""
    client_ip: str = ""
    method: str = ""
    path: str = ""
    status: int | None = None
    reason: str = ""
    user_id: str | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def for_request(
        cls,
        request: Request,
        *,
        action: str,
        outcome: str,
        guard: str = "",
        status: int | None = None,
        reason: str = "",
        user_id: str | None = None,
        fields: Mapping[str, Any] | None = None,
    ) -> SecurityEvent:
        return cls(
            action=action,
            outcome=outcome,
            timestamp=time.time(),
            guard=guard,
            request_id=request.request_id,
            client_ip=request.client.ip,
            method=request.method,
            path=request.path,
            status=status,
            reason=reason,
            user_id=user_id,
            fields=fields or {},
        )

    def to_ecs(self) -> dict[str, Any]:
        """The event as an ECS document (nested objects, ``@timestamp`` in RFC 3339 UTC)."""
        seconds = int(self.timestamp)
        millis = int((self.timestamp - seconds) * 1000)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"
        doc: dict[str, Any] = {
            "@timestamp": stamp,
            "event": {
                "kind": "event",
                "category": ["web"],
                "action": self.action,
                "outcome": self.outcome,
            },
            "url": {"path": self.path},
            "http": {"request": {"method": self.method, "id": self.request_id}},
            "bastion": {"guard": self.guard, **({"reason": self.reason} if self.reason else {})},
        }
        if self.client_ip:
            doc["source"] = {"ip": self.client_ip}
            doc["client"] = {"ip": self.client_ip}
        if self.status is not None:
            doc["http"]["response"] = {"status_code": self.status}
        if self.user_id is not None:
            doc["user"] = {"id": self.user_id}
        if self.fields:
            doc["bastion"]["fields"] = dict(self.fields)
        return doc


class EventSink(Protocol):
    """Where events go. ``emit`` must return at once: no I/O on the caller's path."""

    def emit(self, event: SecurityEvent) -> None: ...


class MemorySink:
    """Keeps events in a list; for tests and for embedding (``bastion.testing``)."""

    def __init__(self) -> None:
        self.events: list[SecurityEvent] = []

    def emit(self, event: SecurityEvent) -> None:
        self.events.append(event)

    def actions(self) -> list[str]:
        return [e.action for e in self.events]


class NullSink:
    def emit(self, event: SecurityEvent) -> None:
        return None
