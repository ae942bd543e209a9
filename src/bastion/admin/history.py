"""The last few minutes of traffic, sampled once a second from the traffic snapshot, so the
dashboard draws a request-rate chart at once instead of waiting for its own polls."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from typing import Any

from bastion.observability.traffic import LATENCY_BUCKETS, TrafficSnapshot

CLASSES = ("2xx", "3xx", "4xx", "5xx")


def status_mix(snapshot: TrafficSnapshot) -> dict[str, int]:
    """Requests answered so far by status class (``1xx`` folds into ``2xx``, 499 into ``4xx``)."""
    mix = dict.fromkeys(CLASSES, 0)
    for key, count in snapshot.requests.items():
        status = key.rsplit("|", 1)[-1]
        klass = f"{status[:1]}xx" if status[:1] in "2345" else "2xx"
        mix[klass] += count
    return mix


def latency_counts(snapshot: TrafficSnapshot) -> list[int]:
    """The latency histogram of every route together (counts per bucket, not cumulative)."""
    total = [0] * (len(LATENCY_BUCKETS) + 1)
    for counts in snapshot.latency_buckets.values():
        for i, count in enumerate(counts[: len(total)]):
            total[i] += count
    return total


def quantile_ms(counts: list[int], q: float) -> float | None:
    """The upper bound (ms) of the bucket holding quantile ``q`` (what a histogram can say)."""
    total = sum(counts)
    if total == 0:
        return None
    rank, seen = q * total, 0
    for bound, count in zip((*LATENCY_BUCKETS, LATENCY_BUCKETS[-1] * 2), counts, strict=True):
        seen += count
        if seen >= rank:
            return round(bound * 1000, 3)
    return round(LATENCY_BUCKETS[-1] * 2000, 3)


class TrafficHistory:
    """Per-second request rates by status class and the latency quantiles of the requests
    answered in that second (from the histogram's buckets), for the last ``points`` seconds."""

    def __init__(
        self,
        snapshot: Callable[[], TrafficSnapshot],
        points: int = 300,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.snapshot = snapshot
        self.clock = clock
        self.points: collections.deque[dict[str, Any]] = collections.deque(maxlen=points)
        self._last: tuple[float, dict[str, int], list[int]] | None = None

    def sample(self) -> None:
        snapshot = self.snapshot()
        now, mix, latency = self.clock(), status_mix(snapshot), latency_counts(snapshot)
        if self._last is not None:
            then, before, earlier = self._last
            seconds = max(now - then, 1e-3)
            point: dict[str, Any] = {"t": round(now, 3)}
            for klass in CLASSES:
                point[klass] = round(max(mix[klass] - before[klass], 0) / seconds, 2)
            window = [max(a - b, 0) for a, b in zip(latency, earlier, strict=True)]
            point["p50_ms"] = quantile_ms(window, 0.5)
            point["p95_ms"] = quantile_ms(window, 0.95)
            self.points.append(point)
        self._last = (now, mix, latency)

    async def run(self, interval: float = 1.0) -> None:
        while True:
            self.sample()
            await asyncio.sleep(interval)
