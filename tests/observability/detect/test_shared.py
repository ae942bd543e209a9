"""Several instances detect as one through the real Redis: spike counts add up across
instances, a country known to one is known to all, stuffing is counted across instances, and an
alert is published by one instance only. Redis gone: each falls back on local state."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from bastion.config.loader import build_config
from bastion.observability.detect.assembly import build_monitor
from bastion.observability.detect.geoip import open_countries
from bastion.observability.detect.shared import RedisShared
from bastion.observability.events import MemorySink
from tests.observability.detect.helpers import FakeClock, Harness

Instances = Callable[[int], Awaitable[list[Harness]]]


@pytest.fixture
async def instances(
    redis_url: str, redis_prefix: str, country_db: Path
) -> AsyncIterator[Instances]:
    """``await instances(n)``: n monitors sharing one Redis key prefix and one fake clock."""
    made: list[Harness] = []
    clock = FakeClock()
    config = build_config(
        {
            "redis": {"url": redis_url, "key_prefix": redis_prefix},
            "monitoring": {"enabled": True, "sync_interval": "1h"},  # tests call sync()
        },
        "test",
    )
    countries = open_countries(country_db)

    async def make(n: int) -> list[Harness]:
        for _ in range(n):
            events = MemorySink()
            monitor = build_monitor(config, events, clock=clock, countries=countries)
            assert isinstance(monitor.shared, RedisShared)
            harness = Harness(monitor, clock, events)
            monitor.listeners.append(harness.alerts.append)
            await monitor.start()
            made.append(harness)
        return made[-n:]

    yield make
    for harness in made:
        await harness.monitor.close()


async def settle(*harnesses: Harness) -> None:
    """Wait for the background Redis work the monitors started."""
    for _ in range(20):
        tasks = [t for h in harnesses for t in h.monitor.shared._tasks]  # type: ignore[union-attr]
        if not tasks:
            return
        await asyncio.gather(*tasks, return_exceptions=True)


def shared(h: Harness) -> RedisShared:
    assert isinstance(h.monitor.shared, RedisShared)
    return h.monitor.shared


async def test_spike_counts_add_up_across_instances(instances: Instances) -> None:
    a, b = await instances(2)
    for _ in range(20):  # neither instance alone reaches min_count (30)
        a.request(ip="198.51.100.66", status=401)
        b.request(ip="198.51.100.66", status=401)
    assert a.alerts == b.alerts == []
    await shared(a).sync()
    await shared(b).sync()
    await settle(a, b)
    fired = [x for x in a.alerts + b.alerts if x.evidence.get("scope") == "ip"]
    assert {x.key for x in fired} == {"spike:ip:198.51.100.66:4xx", "spike:ip:198.51.100.66:401"}
    assert len(fired) == 2  # each key published by one instance only
    assert fired[0].evidence["count"] == 40


async def test_404s_add_up_across_instances(instances: Instances) -> None:
    a, b = await instances(2)
    for n in range(30):  # 60 misses in all, 30 on each: under not_found (50) on either
        a.request(ip="203.0.113.77", path=f"/admin-{n}.php", status=404)
        b.request(ip="203.0.113.77", path=f"/wp-{n}.php", status=404)
    await shared(a).sync()
    await shared(b).sync()
    await settle(a, b)
    fired = [x for x in a.alerts + b.alerts if x.detector == "enumeration"]
    assert [x.key for x in fired] == ["enumeration:not_found:ip:203.0.113.77"]
    assert fired[0].evidence["count"] == 60


async def test_a_country_known_to_one_instance_is_known_to_all(instances: Instances) -> None:
    a, b = await instances(2)
    a.request(ip="203.0.113.10", consumer="acme")  # NL, learned through A
    await settle(a)
    b.request(ip="203.0.113.11", consumer="acme")  # NL again, on B: known, quiet
    await settle(b)
    assert b.alerts == []
    b.request(ip="198.51.100.99", consumer="acme")  # JP, first seen by B
    await settle(b)
    [alert] = b.alerts
    assert alert.detector == "new_country"
    assert alert.evidence["known_countries"] == ["NL"]
    a.request(ip="198.51.100.98", consumer="acme")  # JP on A: known through Redis
    await settle(a)
    assert a.alerts == []


async def test_stuffing_is_counted_across_instances(instances: Instances) -> None:
    a, b = await instances(2)
    for i in range(5):
        a.auth_failure("198.51.100.23", consumer=f"user{i}")
        b.auth_failure("198.51.100.23", consumer=f"user{i + 5}")
        await settle(a, b)
    fired = [x for x in a.alerts + b.alerts if x.detector == "credential_stuffing"]
    assert len(fired) == 1
    assert fired[0].evidence["distinct"] == 10
    assert fired[0].evidence["accounts"] == ["u…(5)"] * 10


async def test_the_same_alert_is_published_by_one_instance(instances: Instances) -> None:
    harnesses = await instances(3)
    for h in harnesses:
        for _ in range(30):
            h.request(ip="192.0.2.9", status=429)
    await settle(*harnesses)
    published = [x.key for h in harnesses for x in h.alerts]
    assert sorted(published) == ["spike:ip:192.0.2.9:429", "spike:ip:192.0.2.9:4xx"]
    events = [e for h in harnesses for e in h.events.events if e.action == "alert.spike"]
    assert len(events) == 2


async def test_without_redis_each_instance_detects_alone(instances: Instances) -> None:
    [a] = await instances(1)
    await shared(a).client.close()  # Redis gone for this instance
    a.request(ip="203.0.113.10", consumer="acme")
    a.request(ip="198.51.100.99", consumer="acme")
    for i in range(10):
        a.auth_failure("198.51.100.23", consumer=f"user{i}")
    for _ in range(30):
        a.request(ip="192.0.2.9", status=401)
    await shared(a).sync()
    assert {x.detector for x in a.alerts} == {"new_country", "credential_stuffing", "spike"}
