"""The last few minutes of traffic, sampled once a second from the traffic snapshot, so the
dashboard draws a request-rate chart at once instead of waiting for its own polls."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from typing import Any

from bastion.observability.traffic import TrafficSnapshot

CLASSES = ("2xx", "3xx", "4xx", "5xx")


def status_mix(snapshot: TrafficSnapshot) -> dict[str, int]:
    """Requests answered so far by status class (``1xx`` folds into ``2xx``, 499 into ``4xx``)."""
    mix = dict.fromkeys(CLASSES, 0)
    for key, count in snapshot.requests.items():
        status = key.rsplit("|", 1)[-1]
        klass = f"{status[:1]}xx" if status[:1] in "2345" else "2xx"
        mix[klass] += count
    return mix


class TrafficHistory:
    """Per-second request rates by status class, for the last ``points`` seconds."""

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
        self._last: tuple[float, dict[str, int]] | None = None

    def sample(self) -> None:
        now, mix = self.clock(), status_mix(self.snapshot())
        if self._last is not None:
            then, before = self._last
            seconds = max(now - then, 1e-3)
            point: dict[str, Any] = {"t": round(now, 3)}
            for klass in CLASSES:
                point[klass] = round(max(mix[klass] - before[klass], 0) / seconds, 2)
            self.points.append(point)
        self._last = (now, mix)

    async def run(self, interval: float = 1.0) -> None:
        while True:
            self.sample()
            await asyncio.sleep(interval)
