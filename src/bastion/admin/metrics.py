"""``/metrics``: the traffic counters in Prometheus text format, built only when scraped.

Security-event metrics are derived from the counts of event actions, by prefix (see
:data:`EVENT_FAMILIES`): a new guard whose actions start with ``validation.`` or ``injection.``
is counted without touching this module."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from bastion.observability.traffic import LATENCY_BUCKETS, TrafficSnapshot

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# metric name, help, action prefix, failures only
EVENT_FAMILIES: tuple[tuple[str, str, str, bool], ...] = (
    ("bastion_auth_outcomes", "Authentication decisions, by action and outcome.", "auth.", False),
    (
        "bastion_ratelimit_decisions",
        "Rate-limit decisions that were recorded (refusals, lockouts, backend changes).",
        "ratelimit.",
        False,
    ),
    ("bastion_validation_refusals", "Requests refused by validation.", "validation.", True),
    ("bastion_injection_refusals", "Requests refused as injection attempts.", "injection.", True),
    ("bastion_alerts_fired", "Alerts raised by the detectors, by action.", "alert.", False),
)


def _histogram(
    name: str, help_text: str, buckets: dict[str, list[int]], sums: dict[str, float]
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, help_text, labels=["route"])
    for route, counts in sorted(buckets.items()):
        cumulative, points = 0, []
        for bound, count in zip((*LATENCY_BUCKETS, float("inf")), counts, strict=True):
            cumulative += count
            points.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        family.add_metric([route], points, sums.get(route, 0.0))
    return family


def _event_families(snap: TrafficSnapshot) -> Iterator[Metric]:
    events: list[tuple[str, str, int]] = []
    for key, count in sorted(snap.security_events.items()):
        action, _, outcome = key.rpartition("|")
        events.append((action, outcome, count))
    every = CounterMetricFamily(
        "bastion_security_events",
        "Security events emitted, by action and outcome.",
        labels=["action", "outcome"],
    )
    for action, outcome, count in events:
        every.add_metric([action, outcome], count)
    yield every
    for name, help_text, prefix, failures in EVENT_FAMILIES:
        family = CounterMetricFamily(name, help_text, labels=["action", "outcome"])
        for action, outcome, count in events:
            if action.startswith(prefix) and (not failures or outcome == "failure"):
                family.add_metric([action, outcome], count)
        yield family
    dropped = CounterMetricFamily(
        "bastion_events_dropped",
        "Events lost: a full writer buffer ('buffer') or a sink that could not keep up.",
        labels=["stage"],
    )
    for stage, count in sorted(snap.events_dropped.items()):
        dropped.add_metric([stage], count)
    yield dropped
    yield CounterMetricFamily(
        "bastion_events_written", "Event lines handed to the sinks.", value=snap.events_written
    )


class TrafficCollector:
    """A Prometheus collector reading a :class:`TrafficSnapshot` at scrape time."""

    def __init__(self, snapshot: Callable[[], TrafficSnapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        requests = CounterMetricFamily(
            "bastion_http_requests",
            "Requests answered, by route, method and status.",
            labels=["route", "method", "status"],
        )
        for key, count in sorted(snap.requests.items()):
            route, method, status = key.split("|")
            requests.add_metric([route, method, status], count)
        yield requests

        yield _histogram(
            "bastion_http_request_duration_seconds",
            "Time from request head to response end, by route (the gateway's whole answer).",
            snap.latency_buckets,
            snap.latency_sum,
        )
        yield _histogram(
            "bastion_upstream_response_duration_seconds",
            "Time from sending a request upstream to its response head, by route.",
            snap.upstream_buckets,
            snap.upstream_sum,
        )
        yield from _event_families(snap)

        upstream = CounterMetricFamily(
            "bastion_upstream_errors",
            "Exchanges the upstream failed, by route and error code.",
            labels=["route", "code"],
        )
        for key, count in sorted(snap.upstream_errors.items()):
            route, code = key.split("|")
            upstream.add_metric([route, code], count)
        yield upstream

        protocol = CounterMetricFamily(
            "bastion_protocol_errors",
            "Requests refused for breaking HTTP/1.1, by error code.",
            labels=["code"],
        )
        for code, count in sorted(snap.protocol_errors.items()):
            protocol.add_metric([code], count)
        yield protocol

        yield GaugeMetricFamily(
            "bastion_connections_open", "Client connections open.", value=snap.connections_open
        )
        yield CounterMetricFamily(
            "bastion_connections", "Client connections accepted.", value=snap.connections_total
        )
        yield GaugeMetricFamily(
            "bastion_requests_in_flight", "Requests being answered.", value=snap.in_flight
        )
        yield GaugeMetricFamily(
            "bastion_start_time_seconds", "When the gateway started.", value=snap.started_at
        )


def render(snapshot: Callable[[], TrafficSnapshot]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TrafficCollector(snapshot))
    return bytes(generate_latest(registry))
