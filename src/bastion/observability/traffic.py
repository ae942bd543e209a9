"""Traffic counters kept in plain dicts on the hot path, rendered only when scraped.

Incrementing a dict entry costs a fraction of a microsecond, so the engine and the middleware
count every exchange here, and ``/metrics`` turns a :class:`TrafficSnapshot` into Prometheus text.
With several worker processes, each publishes its snapshot and the admin listener merges them.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Protocol

LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


@dataclass
class TrafficSnapshot:
    """Plain data, JSON-friendly, so worker processes can hand it to the admin process."""

    requests: dict[str, int] = field(default_factory=dict)  # "route|method|status" -> count
    latency_buckets: dict[str, list[int]] = field(default_factory=dict)  # route -> counts
    latency_sum: dict[str, float] = field(default_factory=dict)
    upstream_buckets: dict[str, list[int]] = field(default_factory=dict)  # route -> counts
    upstream_sum: dict[str, float] = field(default_factory=dict)
    security_events: dict[str, int] = field(default_factory=dict)  # "action|outcome" -> count
    events_dropped: dict[str, int] = field(default_factory=dict)  # stage -> count
    events_written: int = 0
    upstream_errors: dict[str, int] = field(default_factory=dict)  # "route|code" -> count
    protocol_errors: dict[str, int] = field(default_factory=dict)  # code -> count
    connections_open: int = 0
    connections_total: int = 0
    in_flight: int = 0
    started_at: float = 0.0

    def merge(self, other: TrafficSnapshot) -> None:
        _add(self.requests, other.requests)
        _add_buckets(self.latency_buckets, other.latency_buckets)
        _add(self.latency_sum, other.latency_sum)
        _add_buckets(self.upstream_buckets, other.upstream_buckets)
        _add(self.upstream_sum, other.upstream_sum)
        _add(self.security_events, other.security_events)
        _add(self.events_dropped, other.events_dropped)
        self.events_written += other.events_written
        _add(self.upstream_errors, other.upstream_errors)
        _add(self.protocol_errors, other.protocol_errors)
        self.connections_open += other.connections_open
        self.connections_total += other.connections_total
        self.in_flight += other.in_flight
        self.started_at = min(filter(None, (self.started_at, other.started_at)), default=0.0)


def _add(mine: dict[str, float] | dict[str, int], other: dict[str, float] | dict[str, int]) -> None:
    for key, value in other.items():
        mine[key] = mine.get(key, 0) + value  # type: ignore[assignment]


def _add_buckets(mine: dict[str, list[int]], other: dict[str, list[int]]) -> None:
    for route, counts in other.items():
        total = mine.setdefault(route, [0] * len(counts))
        for i, count in enumerate(counts):
            total[i] += count


class EventCounters(Protocol):
    """What the event writer counted, read at snapshot time (``EventWriter`` provides it)."""

    counts: dict[tuple[str, str], int]
    written: int

    def sink_drops(self) -> dict[str, int]: ...


class TrafficStats:
    """The live counters of one process."""

    __slots__ = (
        "_buckets",
        "_latency_sum",
        "_requests",
        "_up_buckets",
        "_up_sum",
        "connections_open",
        "connections_total",
        "events",
        "in_flight",
        "protocol_errors",
        "started_at",
        "upstream_errors",
    )

    def __init__(self) -> None:
        self._requests: dict[tuple[str, str, int], int] = {}
        self._buckets: dict[str, list[int]] = {}
        self._latency_sum: dict[str, float] = {}
        self._up_buckets: dict[str, list[int]] = {}
        self._up_sum: dict[str, float] = {}
        self.events: EventCounters | None = None  # the event writer, once attached
        self.upstream_errors: dict[tuple[str, str], int] = {}
        self.protocol_errors: dict[str, int] = {}
        self.connections_open = 0
        self.connections_total = 0
        self.in_flight = 0
        self.started_at = time.time()

    def record(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        requests = self._requests
        requests[key] = requests.get(key, 0) + 1
        buckets = self._buckets.get(route)
        if buckets is None:
            buckets = self._buckets[route] = [0] * (len(LATENCY_BUCKETS) + 1)
            self._latency_sum[route] = 0.0
        buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self._latency_sum[route] += seconds

    def record_upstream(self, route: str, seconds: float) -> None:
        """The upstream's part of an exchange: request sent to response head received."""
        buckets = self._up_buckets.get(route)
        if buckets is None:
            buckets = self._up_buckets[route] = [0] * (len(LATENCY_BUCKETS) + 1)
            self._up_sum[route] = 0.0
        buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self._up_sum[route] += seconds

    def upstream_error(self, route: str, code: str) -> None:
        key = (route, code)
        self.upstream_errors[key] = self.upstream_errors.get(key, 0) + 1

    def protocol_error(self, code: str) -> None:
        self.protocol_errors[code] = self.protocol_errors.get(code, 0) + 1

    def snapshot(self) -> TrafficSnapshot:
        events = self.events
        return TrafficSnapshot(
            requests={f"{r}|{m}|{s}": n for (r, m, s), n in self._requests.items()},
            latency_buckets={r: list(b) for r, b in self._buckets.items()},
            latency_sum=dict(self._latency_sum),
            upstream_buckets={r: list(b) for r, b in self._up_buckets.items()},
            upstream_sum=dict(self._up_sum),
            security_events=(
                {f"{a}|{o}": n for (a, o), n in list(events.counts.items())} if events else {}
            ),
            events_dropped=events.sink_drops() if events else {},
            events_written=events.written if events else 0,
            upstream_errors={f"{r}|{c}": n for (r, c), n in self.upstream_errors.items()},
            protocol_errors=dict(self.protocol_errors),
            connections_open=self.connections_open,
            connections_total=self.connections_total,
            in_flight=self.in_flight,
            started_at=self.started_at,
        )
