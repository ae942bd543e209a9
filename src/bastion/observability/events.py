"""Security events: one per decision that matters, in Elastic Common Schema field names.

An event is built on the hot path from values the request view already holds (no header
decoding, no secret ever: guards pass only redacted fields). Sinks must not block the caller.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from bastion.pipeline.request import Request


_NO_FIELDS: Mapping[str, Any] = MappingProxyType({})
# ECS event.type by outcome: a decision that let the request through, or refused it.
_TYPES = {"success": "allowed", "failure": "denied"}


class SecurityEvent:
    """One security decision. ``action`` is the stable code (``auth.invalid_token``).

    A plain slotted class rather than a frozen dataclass: one is built per authenticated request
    (every attempt is an event), and a frozen dataclass's keyword construction cost more than the
    guard that decided. Treat it as immutable.
    """

    __slots__ = (
        "action",
        "client_ip",
        "fields",
        "guard",
        "method",
        "outcome",
        "path",
        "reason",
        "request_id",
        "status",
        "timestamp",
        "user_id",
    )

    def __init__(
        self,
        action: str,
        outcome: str,  # "success" | "failure" | "unknown" (ECS event.outcome)
        timestamp: float,
        guard: str = "",
        request_id: str = "",
        client_ip: str = "",
        method: str = "",
        path: str = "",
        status: int | None = None,
        reason: str = "",
        user_id: str | None = None,
        fields: Mapping[str, Any] = _NO_FIELDS,
    ) -> None:
        self.action = action
        self.outcome = outcome
        self.timestamp = timestamp
        self.guard = guard
        self.request_id = request_id
        self.client_ip = client_ip
        self.method = method
        self.path = path
        self.status = status
        self.reason = reason
        self.user_id = user_id
        self.fields = fields

    @staticmethod
    def for_request(
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
        return SecurityEvent(
            action,
            outcome,
            time.time(),
            guard,
            request.request_id,
            request.client.ip,
            request.method,
            request.path,
            status,
            reason,
            user_id,
            fields or _NO_FIELDS,
        )

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecurityEvent):
            return NotImplemented
        return self._values() == other._values()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"SecurityEvent(action={self.action!r}, outcome={self.outcome!r}, "
            f"guard={self.guard!r}, status={self.status!r}, user_id={self.user_id!r})"
        )

    def to_ecs(self) -> dict[str, Any]:
        """The event as an ECS document (nested objects, ``@timestamp`` in RFC 3339 UTC).

        Not redacted: sinks get it through :func:`bastion.observability.ecs.security_line`.
        ``event.dataset`` tells security events (``bastion.security``) from alerts
        (``bastion.alert``, whose action starts with ``alert.``) and access events."""
        seconds = int(self.timestamp)
        millis = int((self.timestamp - seconds) * 1000)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"
        return self.ecs_document(stamp)

    def ecs_document(self, stamp: str) -> dict[str, Any]:
        """:meth:`to_ecs` with ``@timestamp`` already formatted (the writer caches it)."""
        alert = self.action.startswith("alert.")
        auth = self.action.startswith("auth.")
        doc: dict[str, Any] = {
            "@timestamp": stamp,
            "event": {
                "kind": "alert" if alert else "event",
                "dataset": "bastion.alert" if alert else "bastion.security",
                "category": ["authentication", "web"] if auth else ["web"],
                "type": [_TYPES.get(self.outcome, "info")],
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
