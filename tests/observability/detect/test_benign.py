"""A steady benign replay of 100,000 requests raises no alert: every detector, default
parameters, driven in-process on a fake clock (100 requests a second for about 17 minutes)."""

from __future__ import annotations

import random
from pathlib import Path

from tests.observability.detect.helpers import harness

REQUESTS = 100_000
PER_SECOND = 100
CONSUMERS = 300
ROUTES = {"orders": (300, 2_000), "catalog": (0, 8_000), "upload": (20_000, 60_000)}


def test_benign_replay_is_quiet(country_db: Path) -> None:
    h = harness(country_db=country_db)
    rng = random.Random(7)
    # Each consumer has one or two stable addresses in one country, and its own objects.
    homes = ["203.0.113.", "198.51.100.", "192.0.2."]
    consumers = []
    for n in range(CONSUMERS):
        net = homes[n % 3]
        addresses = [net + str(rng.randrange(1, 255)) for _ in range(rng.choice((1, 2)))]
        objects = [rng.randrange(1, 10**6) for _ in range(rng.randrange(1, 40))]
        consumers.append((f"consumer-{n}", addresses, objects))
    sent = 0
    while sent < REQUESTS:
        for _ in range(PER_SECOND):
            name, addresses, objects = rng.choice(consumers)
            ip = rng.choice(addresses)
            route = rng.choice(list(ROUTES))
            low, high = ROUTES[route]
            roll = rng.random()
            if roll < 0.01:  # a stale or mistyped key: 401, anonymous
                h.request(ip=ip, route=route, path=f"/{route}", status=401)
                h.auth_failure(ip, consumer=None, key_id=f"key-{name}")
            elif roll < 0.03:  # a deleted object
                h.request(ip=ip, consumer=name, route=route,
                          path=f"/{route}/{rng.randrange(10**6)}", status=404)  # fmt: skip
            elif roll < 0.035:
                h.request(ip=ip, consumer=name, route=route, path=f"/{route}", status=429)
            elif roll < 0.04:
                h.request(ip=ip, consumer=name, route=route, path=f"/{route}", status=403)
            else:
                h.request(
                    ip=ip,
                    consumer=name,
                    route=route,
                    path=f"/{route}/{rng.choice(objects)}",
                    request_bytes=rng.randint(low, high) if low else 0,
                    response_bytes=int(rng.lognormvariate(7, 0.5)),
                )
            sent += 1
        h.clock.advance(1.0)
    # The detectors did see the traffic (so the silence means something).
    monitor = h.monitor
    assert monitor.spikes is not None
    assert len(monitor.spikes.windows) > 300
    assert monitor.payload is not None
    assert len(monitor.payload.routes) == 5
    assert monitor.new_country is not None
    assert len(monitor.new_country.known) == CONSUMERS
    assert monitor.enumeration is not None
    assert len(monitor.enumeration.walks) == CONSUMERS * 3
    assert monitor.stuffing is not None
    assert len(monitor.stuffing.keys) > 100
    assert h.alerts == []
    assert h.monitor.detections == 0
    assert not [e for e in h.events.events if e.action.startswith("alert.")]
