"""Admin endpoints: health, readiness that follows the gateway's state, Prometheus metrics."""

from __future__ import annotations

import asyncio

import orjson
from prometheus_client.parser import text_string_to_metric_families

from bastion.admin import endpoints
from bastion.config import load_config
from bastion.observability.traffic import TrafficSnapshot, TrafficStats
from bastion.pipeline.request import ClientAddress, Headers, Request
from bastion.pipeline.routing import Route


def get(routes: list[Route], path: str) -> tuple[int, dict[str, str], bytes]:
    route = next(r for r in routes if r.path_prefix == path)
    assert route.endpoint is not None
    request = Request(
        method="GET", path=path, query="", headers=Headers([]), client=ClientAddress("127.0.0.1", 1)
    )
    response = asyncio.run(route.endpoint(request))
    return response.status, dict(response.headers), response.body


def test_healthz_and_readyz_follow_readiness() -> None:
    state = {"ready": False}
    routes = endpoints(load_config(None), TrafficSnapshot, lambda: state["ready"])
    status, _, body = get(routes, "/healthz")
    assert status == 200
    assert orjson.loads(body)["status"] == "ok"
    assert get(routes, "/readyz")[0] == 503
    state["ready"] = True
    assert get(routes, "/readyz")[0] == 200


def test_metrics_parse_as_prometheus_text() -> None:
    stats = TrafficStats()
    stats.record("api", "GET", 200, 0.002)
    stats.record("api", "GET", 200, 0.2)
    stats.record("api", "POST", 502, 0.01)
    stats.upstream_error("api", "upstream.unreachable")
    stats.protocol_error("request.headers_too_large")
    stats.connections_open = 3
    routes = endpoints(load_config(None), stats.snapshot, lambda: True)
    status, headers, body = get(routes, "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    requests = {
        (s.labels["method"], s.labels["status"]): s.value
        for s in families["bastion_http_requests"].samples
        if s.name.endswith("_total")
    }
    assert requests == {("GET", "200"): 2.0, ("POST", "502"): 1.0}
    histogram = families["bastion_http_request_duration_seconds"].samples
    count = next(s for s in histogram if s.name.endswith("_count"))
    assert count.value == 3.0
    inf = next(s for s in histogram if s.labels.get("le") == "+Inf")
    assert inf.value == 3.0
    errors = families["bastion_upstream_errors"].samples
    assert any(s.labels.get("code") == "upstream.unreachable" and s.value == 1 for s in errors)
    assert families["bastion_connections_open"].samples[0].value == 3


def test_snapshots_of_workers_merge() -> None:
    a, b = TrafficStats(), TrafficStats()
    a.record("api", "GET", 200, 0.001)
    b.record("api", "GET", 200, 0.001)
    b.record("web", "GET", 404, 0.5)
    merged = a.snapshot()
    merged.merge(b.snapshot())
    assert merged.requests == {"api|GET|200": 2, "web|GET|404": 1}
    assert sum(merged.latency_buckets["api"]) == 2
