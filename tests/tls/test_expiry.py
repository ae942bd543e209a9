"""Certificate expiry as warning events: at start and then daily, for served certificates,
client CAs and the upstream client certificate."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import trustme

from bastion.config.tls import TLSConfig
from bastion.observability.events import MemorySink
from bastion.tls.expiry import expiry_events, watch_expiry, watched_certificates
from bastion.tls.runtime import TLSRuntime
from tests.engine.helpers import make_config
from tests.tls.helpers import issue

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def cert_ending(ca: trustme.CA, directory: Path, name: str, days: float) -> Path:
    issued = issue(
        ca,
        directory,
        name,
        f"{name}.test",
        not_before=NOW - dt.timedelta(days=30),
        not_after=NOW + dt.timedelta(days=days),
    )
    return issued.cert


def test_expiring_and_expired_certificates_are_events(tmp_path: Path) -> None:
    ca = trustme.CA()
    soon = cert_ending(ca, tmp_path, "soon", 10)
    later = cert_ending(ca, tmp_path, "later", 100)
    gone = cert_ending(ca, tmp_path, "gone", -1)
    found = expiry_events(
        [("server", soon), ("server", later), ("upstream_client", gone)],
        30 * 86400,
        NOW.timestamp(),
    )
    assert [e.action for e in found] == ["tls.certificate_expiring", "tls.certificate_expired"]
    first = found[0]
    assert first.outcome == "unknown"
    assert first.fields["certificate"]["days_left"] == 10.0
    assert first.fields["certificate"]["file"] == str(soon)
    assert first.fields["certificate"]["role"] == "server"
    assert "expires in 10.0 days" in first.reason
    assert found[1].fields["certificate"]["role"] == "upstream_client"
    doc = first.to_ecs()
    assert doc["event"]["action"] == "tls.certificate_expiring"


def test_every_certificate_bastion_relies_on_is_watched(tmp_path: Path) -> None:
    config = TLSConfig.model_validate(
        {
            "certificates": [{"cert": "a.pem", "key": "a-key.pem"}],
            "client_auth": {"mode": "optional", "ca": ["clients.pem"]},
            "upstream": {"client_cert": "gw.pem", "client_key": "gw-key.pem"},
            "upstream_routes": {"x": {"client_cert": "x.pem", "client_key": "x-key.pem"}},
        }
    )
    assert watched_certificates(config) == [
        ("server", Path("a.pem")),
        ("client_ca", Path("clients.pem")),
        ("upstream_client", Path("gw.pem")),
        ("upstream_client", Path("x.pem")),
    ]


async def test_the_watch_checks_at_start_then_every_interval(tmp_path: Path) -> None:
    soon = cert_ending(trustme.CA(), tmp_path, "soon", 5)
    sink = MemorySink()
    stop = asyncio.Event()
    clock = [NOW.timestamp()]
    task = asyncio.create_task(
        watch_expiry(
            lambda: [("server", soon)], 30 * 86400, sink, stop, clock=lambda: clock[0], every=0.01
        )
    )
    while len(sink.events) < 2:  # at start, then at the next check
        await asyncio.sleep(0.001)
    stop.set()
    await task
    assert {e.action for e in sink.events} == {"tls.certificate_expiring"}


async def test_serving_warns_at_start(tmp_path: Path) -> None:
    ca = trustme.CA()
    near = issue(
        ca, tmp_path, "near", "localhost", not_after=dt.datetime.now(dt.UTC) + dt.timedelta(days=3)
    )
    config = make_config(
        "http://127.0.0.1:9",
        state_dir=str(tmp_path / "state"),
        tls={"certificates": [near.files()]},
    )
    sink = MemorySink()
    runtime = TLSRuntime.create(config, sink)
    assert runtime is not None
    await runtime.start(8443)
    try:
        while not sink.events:
            await asyncio.sleep(0.001)
    finally:
        await runtime.close(1.0)
    assert sink.events[0].action == "tls.certificate_expiring"
    assert sink.events[0].fields["certificate"]["days_left"] <= 3
