"""Metrics of events and latency: counted from event actions by prefix, rendered on /metrics,
and merged across worker processes the way the supervisor reads their snapshots."""

from __future__ import annotations

import asyncio
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from bastion.admin import endpoints
from bastion.config import load_config
from bastion.engine.runtime import write_snapshot
from bastion.engine.supervisor import _read
from bastion.observability.events import SecurityEvent
from bastion.observability.traffic import TrafficSnapshot, TrafficStats
from bastion.observability.writer import EventWriter
from bastion.pipeline.request import ClientAddress, Headers, Request


def scrape(snapshot: TrafficSnapshot) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    routes = endpoints(load_config(None), lambda: snapshot, lambda: True)
    route = next(r for r in routes if r.path_prefix == "/metrics")
    assert route.endpoint is not None
    request = Request(
        method="GET", path="/metrics", query="", headers=Headers([]), client=ClientAddress("::1", 1)
    )
    body = asyncio.run(route.endpoint(request)).body.decode()
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def worker(actions: list[tuple[str, str]]) -> TrafficStats:
    stats = TrafficStats()
    writer = EventWriter([])
    stats.events = writer
    for action, outcome in actions:
        writer.emit(SecurityEvent(action, outcome, 1.0))
    writer.dropped = 3
    stats.record("api", "GET", 200, 0.004)
    stats.record_upstream("api", 0.003)
    return stats


def test_event_metrics_by_prefix_and_upstream_latency() -> None:
    stats = worker(
        [
            ("auth.success", "success"),
            ("auth.invalid_credentials", "failure"),
            ("ratelimit.exceeded", "failure"),
            ("validation.body_invalid", "failure"),
            ("validation.checked", "success"),  # not a refusal
            ("injection.sql", "failure"),
            ("alert.credential_stuffing", "unknown"),
            ("upstream.tls_failed", "failure"),
        ]
    )
    m = scrape(stats.snapshot())
    assert m["bastion_auth_outcomes_total"] == {
        (("action", "auth.invalid_credentials"), ("outcome", "failure")): 1.0,
        (("action", "auth.success"), ("outcome", "success")): 1.0,
    }
    assert list(m["bastion_ratelimit_decisions_total"].values()) == [1.0]
    assert m["bastion_validation_refusals_total"] == {
        (("action", "validation.body_invalid"), ("outcome", "failure")): 1.0
    }
    assert list(m["bastion_injection_refusals_total"]) == [
        (("action", "injection.sql"), ("outcome", "failure"))
    ]
    assert list(m["bastion_alerts_fired_total"]) == [
        (("action", "alert.credential_stuffing"), ("outcome", "unknown"))
    ]
    assert len(m["bastion_security_events_total"]) == 8
    assert m["bastion_events_dropped_total"] == {(("stage", "buffer"),): 3.0}
    assert m["bastion_upstream_response_duration_seconds_count"] == {(("route", "api"),): 1.0}
    le = m["bastion_upstream_response_duration_seconds_bucket"]
    assert le[(("le", "0.0025"), ("route", "api"))] == 0.0
    assert le[(("le", "0.005"), ("route", "api"))] == 1.0


def test_workers_snapshots_merge_through_their_files(tmp_path: Path) -> None:
    merged = TrafficSnapshot()
    for n, stats in enumerate(
        (worker([("auth.success", "success")] * 2), worker([("auth.success", "success")]))
    ):
        path = tmp_path / f"worker-{n}.json"
        write_snapshot(path, stats.snapshot())
        snapshot = _read(path)
        assert snapshot is not None
        merged.merge(snapshot)
    m = scrape(merged)
    assert m["bastion_auth_outcomes_total"] == {
        (("action", "auth.success"), ("outcome", "success")): 3.0
    }
    assert m["bastion_events_dropped_total"] == {(("stage", "buffer"),): 6.0}
    assert m["bastion_upstream_response_duration_seconds_count"] == {(("route", "api"),): 2.0}
