"""Regression: the detectors' memory stays within their configured bounds whatever the number of
distinct client addresses, also while the Redis they share state through is down (the windows
waiting for a sync used to be remembered outside the LRU until Redis came back)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bastion.config.loader import build_config
from bastion.observability.detect.assembly import build_monitor
from bastion.observability.detect.shared import RedisShared
from bastion.observability.events import MemorySink
from tests.observability.detect.helpers import FakeClock
from tests.ports import free_port

SPRAY = 3_000


@pytest.fixture
async def shared_monitor() -> AsyncIterator[RedisShared]:
    config = build_config(
        {
            # Redis is configured but not there (a dead port): the outage case.
            "redis": {"url": f"redis://127.0.0.1:{free_port()}/0", "key_prefix": "advisory:"},
            "monitoring": {
                "enabled": True,
                "sync_interval": "1h",  # the test calls sync()
                "detectors": {
                    "spikes": {"max_keys": 100},
                    "enumeration": {"max_keys": 100},
                    "new_country": {"enabled": False},
                },
            },
        },
        "test",
    )
    monitor = build_monitor(config, MemorySink(), clock=FakeClock())
    assert isinstance(monitor.shared, RedisShared)
    await monitor.start()
    yield monitor.shared
    await monitor.close()


async def test_windows_waiting_for_redis_stay_bounded(shared_monitor: RedisShared) -> None:
    monitor = shared_monitor.monitor
    assert monitor is not None
    assert monitor.spikes is not None
    assert monitor.enumeration is not None
    assert not shared_monitor.client.up
    for round_ in range(3):  # three sync intervals of an address spray during the outage
        for i in range(SPRAY):
            ip = f"2001:db8::{round_:x}:{i:x}"
            monitor.exchange(None, ip, "api", "/missing", 404)
        await shared_monitor.sync()
    assert len(monitor.spikes.windows) <= 100
    assert len(monitor.enumeration.misses) <= 100
    assert len(monitor.spikes.dirty) <= SPRAY * 2  # one interval's worth at most
    assert len(monitor.enumeration.dirty) <= SPRAY
