"""How monitoring is wired: off by default; on, a tee in front of the configured sink and the
``monitor`` guard last in the chain, sharing one monitor; config errors name their field; the
middleware runs the same detectors."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from bastion.asgi.middleware import BastionMiddleware
from bastion.assembly import build_events, build_gateway_chain
from bastion.config.loader import build_config
from bastion.errors import ConfigError
from bastion.observability.detect.assembly import build_monitor
from bastion.observability.detect.guard import MonitorGuard
from bastion.observability.detect.tee import MonitoredSink
from bastion.observability.events import MemorySink, NullSink, SecurityEvent
from bastion.pipeline.guard import Phase

ROUTES = [{"name": "api", "upstream": "http://127.0.0.1:9"}]


def test_monitoring_is_off_by_default() -> None:
    config = build_config({"routes": ROUTES, "events": {"sink": "none"}}, "test")
    chain = build_gateway_chain(config, build_events(config))
    assert not isinstance(chain.events, MonitoredSink)
    assert "monitor" not in chain.names()


def test_on_the_tee_and_the_guard_share_one_monitor() -> None:
    config = build_config(
        {"routes": ROUTES, "events": {"sink": "none"}, "monitoring": {"enabled": True}}, "test"
    )
    writer = build_events(config)
    chain = build_gateway_chain(config, writer)
    events = chain.events
    assert isinstance(events, MonitoredSink)
    assert events.inner is writer  # alerts go to the configured writer, through no second tee
    assert build_gateway_chain(config, events).events is events  # wrapping is idempotent
    guard = chain.guards[-1]
    assert isinstance(guard, MonitorGuard)
    assert guard.phase is Phase.LOG
    assert guard.monitor is events.monitor
    assert guard.monitor.shared is None  # no redis.url: each process alone


def test_the_tee_passes_events_on_unchanged_and_is_transparent() -> None:
    config = build_config({"monitoring": {"enabled": True}}, "test")
    inner = MemorySink()
    tee = MonitoredSink(inner, build_monitor(config, inner))
    event = SecurityEvent("auth.success", "success", 1.0, client_ip="100.64.0.1")
    tee.emit(event)
    assert inner.events == [event]
    assert tee.actions() == ["auth.success"]  # the inner sink's own attributes


def test_config_errors_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"new_country\.database.*expected a MaxMind DB"):
        build_config(
            {"monitoring": {"detectors": {"new_country": {"database": str(tmp_path / "x")}}}},
            "test",
        )
    not_mmdb = tmp_path / "countries.mmdb"
    not_mmdb.write_bytes(b"not a database")
    config = build_config(
        {
            "monitoring": {
                "enabled": True,
                "detectors": {"new_country": {"database": str(not_mmdb)}},
            }
        },
        "test",
    )
    with pytest.raises(ConfigError, match=r"new_country\.database: .* could not be opened"):
        build_monitor(config, NullSink())
    config = build_config({"monitoring": {"enabled": True, "shared": "redis"}}, "test")
    with pytest.raises(ConfigError, match=r"shared is 'redis' but redis\.url is not set"):
        build_monitor(config, NullSink())
    with pytest.raises(ConfigError, match=r"spikes\.statuses"):
        build_config({"monitoring": {"detectors": {"spikes": {"statuses": ["5xx"]}}}}, "test")


def test_the_bundled_country_database_is_used_when_none_is_configured() -> None:
    config = build_config({"monitoring": {"enabled": True}}, "test")
    monitor = build_monitor(config, NullSink())
    assert monitor.new_country is not None
    assert monitor.new_country.lookup.country("81.2.69.142") == "GB"  # a public address
    assert monitor.new_country.lookup.country("10.0.0.1") is None


async def test_the_middleware_runs_the_same_detectors() -> None:
    async def refusing_app(scope, receive, send):  # type: ignore[no-untyped-def]
        await send({"type": "http.response.start", "status": 401, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    events = MemorySink()
    config = build_config({"monitoring": {"enabled": True}}, "test")
    app = BastionMiddleware(refusing_app, config, events=events)
    transport = httpx.ASGITransport(app=app, client=("198.51.100.66", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        for _ in range(30):
            assert (await client.get("/orders")).status_code == 401
    alerts = [e for e in events.events if e.action == "alert.spike"]
    assert {e.fields["alert_key"] for e in alerts} == {
        "spike:ip:198.51.100.66:4xx",
        "spike:ip:198.51.100.66:401",
    }
    await app.chain.close()
