"""``/metrics``: the traffic counters in Prometheus text format, built only when scraped."""

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

        latency = HistogramMetricFamily(
            "bastion_http_request_duration_seconds",
            "Time from request head to response end, by route.",
            labels=["route"],
        )
        for route, counts in sorted(snap.latency_buckets.items()):
            cumulative, buckets = 0, []
            for bound, count in zip((*LATENCY_BUCKETS, float("inf")), counts, strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
            latency.add_metric([route], buckets, snap.latency_sum.get(route, 0.0))
        yield latency

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
