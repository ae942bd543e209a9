"""Regression: the admin API's and the dashboard's view of recent events (the in-memory ring,
also the fallback when the event store cannot be read) returned events as guards built them,
never passed through the redactor every sink applies: a credential in a path or a reason
reached the admin API's answer."""

from __future__ import annotations

import orjson

from bastion.auth.keys.format import generate
from bastion.control.recent import EventQuery, RecentEvents, merged
from bastion.observability.events import SecurityEvent


def test_recent_events_are_redacted_like_every_sink() -> None:
    secret = generate().secret
    ring = RecentEvents(10)
    ring.emit(
        SecurityEvent(
            "auth.invalid_key",
            "failure",
            1.0,
            path=f"/users/{secret}/orders",
            reason=f"presented api_key={secret}",
            client_ip="192.0.2.1",
            status=401,
        )
    )
    answer = orjson.dumps(ring.query(EventQuery(limit=10)))
    assert secret.encode() not in answer
    assert b"auth.invalid_key" in answer
    combined = merged([ring.export()], 10, ring.redactor)
    assert secret.encode() not in orjson.dumps(combined.query(EventQuery(limit=10)))
