"""Recent security events, kept in memory for the admin API's events query and the dashboard.

:class:`RecentEvents` is an :class:`~bastion.observability.events.EventSink` chained beside the
configured sinks (:class:`Tee`). It keeps the last ``capacity`` events (a bounded ring: ``emit``
is one deque append, safe on the request path) and counts refusals per source address with the
Space-Saving algorithm (Metwally et al., 2005): ``k`` counters find every source with more than
1/k of all refusals, in bounded memory whatever an attacker sends.

The query contract (:class:`EventQuery` in, ECS documents out) is what a persistent event store
implements too, so the admin API can be backed by one without changing.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bastion.observability.ecs import security_document
from bastion.observability.events import EventSink, SecurityEvent
from bastion.observability.redact import Redactor

TOP_SOURCES = 64


@dataclass(frozen=True, slots=True)
class EventQuery:
    """Which events: newest first, at most ``limit``. Empty filters match everything."""

    since: float | None = None
    until: float | None = None
    action: str = ""  # a prefix: "auth." or "alert."
    outcome: str = ""
    consumer: str = ""
    ip: str = ""
    limit: int = 100


class EventSource(Protocol):
    """Answers an :class:`EventQuery` (memory ring here; a store can do the same)."""

    def query(self, query: EventQuery) -> list[dict[str, Any]]: ...


def _matches(event: SecurityEvent, query: EventQuery) -> bool:
    if query.since is not None and event.timestamp < query.since:
        return False
    if query.until is not None and event.timestamp >= query.until:  # before: as the store
        return False
    if query.action and not event.action.startswith(query.action):
        return False
    if query.outcome and event.outcome != query.outcome:
        return False
    if query.consumer and event.user_id != query.consumer:
        return False
    return not (query.ip and event.client_ip != query.ip)


def is_refusal(event: SecurityEvent) -> bool:
    return event.outcome == "failure" and bool(event.client_ip) and (event.status or 0) >= 400


class SpaceSaving:
    """Approximate top-k counts in ``k`` counters (never under-counts a heavy hitter)."""

    def __init__(self, k: int = TOP_SOURCES) -> None:
        self.k = k
        self.counts: dict[str, int] = {}

    def add(self, item: str) -> None:
        counts = self.counts
        if item in counts:
            counts[item] += 1
        elif len(counts) < self.k:
            counts[item] = 1
        else:
            smallest = min(counts, key=counts.__getitem__)
            counts[item] = counts.pop(smallest) + 1

    def top(self, n: int) -> list[tuple[str, int]]:
        return sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


class RecentEvents:
    """The last ``capacity`` events that were not successes (refusals, failures, alerts), the
    last ``capacity // 10`` successes, and the top refusing sources, in this process.

    Successes (``auth.success``, one per authenticated request) have a ring of their own: in one
    ring they would push every refusal out within a second of ordinary traffic.
    """

    def __init__(
        self, capacity: int = 1000, *, k: int = TOP_SOURCES, redactor: Redactor | None = None
    ) -> None:
        # Documents leave through the admin API and the dashboard: redacted like every sink's.
        self.redactor = redactor or Redactor()
        self.events: collections.deque[SecurityEvent] = collections.deque(maxlen=capacity)
        self.successes: collections.deque[SecurityEvent] = collections.deque(
            maxlen=max(10, capacity // 10)
        )
        self.refusals = SpaceSaving(k)
        self.emitted = 0

    def emit(self, event: SecurityEvent) -> None:
        # On the request path: one comparison and one append for a success.
        self.emitted += 1
        if event.outcome == "success":
            self.successes.append(event)
            return
        self.events.append(event)
        if event.outcome == "failure" and event.client_ip and (event.status or 0) >= 400:
            self.refusals.add(event.client_ip)

    def all(self) -> list[SecurityEvent]:
        """Every event kept, oldest first."""
        return sorted([*self.events, *self.successes], key=lambda e: e.timestamp)

    def query(self, query: EventQuery) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for event in reversed(self.all()):
            if _matches(event, query):
                found.append(security_document(event, self.redactor))
                if len(found) >= query.limit:
                    break
        return found

    def top_refusals(self, n: int = 10) -> list[tuple[str, int]]:
        return self.refusals.top(n)

    def export(self) -> dict[str, Any]:
        """A JSON-friendly copy (a worker hands it to the supervisor's admin listener)."""
        return {
            "events": [_plain(e) for e in self.all()],
            "refusals": self.refusals.counts,
            "emitted": self.emitted,
        }

    def absorb(self, exported: dict[str, Any]) -> None:
        """Add what another process exported (events in time order, refusal counts)."""
        for doc in exported.get("events", []):
            event = _event(doc)
            if event is not None:
                ring = self.successes if event.outcome == "success" else self.events
                ring.append(event)
        for source, count in dict(exported.get("refusals", {})).items():
            if isinstance(source, str) and isinstance(count, int):
                self.refusals.counts[source] = self.refusals.counts.get(source, 0) + count
        self.emitted += int(exported.get("emitted", 0))


def merged(
    parts: Iterable[dict[str, Any]], capacity: int, redactor: Redactor | None = None
) -> RecentEvents:
    """One view over several processes' exports, newest events kept."""
    docs: list[dict[str, Any]] = []
    total = RecentEvents(capacity, k=TOP_SOURCES * 4, redactor=redactor)
    for part in parts:
        docs.extend(part.get("events", []))
        total.absorb({"refusals": part.get("refusals", {}), "emitted": part.get("emitted", 0)})
    docs.sort(key=lambda d: float(d.get("timestamp", 0.0)))
    total.absorb({"events": docs[-capacity:]})
    return total


_FIELDS = (
    "action",
    "outcome",
    "timestamp",
    "guard",
    "request_id",
    "client_ip",
    "method",
    "path",
    "status",
    "reason",
    "user_id",
)


def _plain(event: SecurityEvent) -> dict[str, Any]:
    doc = {name: getattr(event, name) for name in _FIELDS}
    if event.fields:
        doc["fields"] = dict(event.fields)
    return doc


def _event(doc: dict[str, Any]) -> SecurityEvent | None:
    try:
        return SecurityEvent(
            str(doc["action"]),
            str(doc["outcome"]),
            float(doc["timestamp"]),
            str(doc.get("guard", "")),
            str(doc.get("request_id", "")),
            str(doc.get("client_ip", "")),
            str(doc.get("method", "")),
            str(doc.get("path", "")),
            doc.get("status"),
            str(doc.get("reason", "")),
            doc.get("user_id"),
            dict(doc.get("fields") or {}),
        )
    except (KeyError, TypeError, ValueError):
        return None


class Tee:
    """Sends each event to every sink in ``sinks`` (each must return at once)."""

    def __init__(self, sinks: Sequence[EventSink]) -> None:
        self.sinks = tuple(sinks)
        self._emits = tuple(sink.emit for sink in self.sinks)  # bound once, not per event

    def emit(self, event: SecurityEvent) -> None:
        for emit in self._emits:
            emit(event)

    def close(self) -> None:
        for sink in self.sinks:
            close = getattr(sink, "close", None)
            if callable(close):
                close()

    def __getattr__(self, name: str) -> Any:
        # Counters of the configured sink (``dropped``, ``written``) stay readable through the tee.
        if name.startswith("_") or name in ("sinks",):
            raise AttributeError(name)
        for sink in self.sinks:
            if hasattr(sink, name):
                return getattr(sink, name)
        raise AttributeError(name)
