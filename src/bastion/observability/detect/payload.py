"""Payload-size outliers per route: request bodies and responses far above the route's median.

Robust statistics: each route and direction keeps its last ``samples`` sizes in a ring; every
``samples // 8`` new sizes the median and the median absolute deviation (MAD) are recomputed
from a sorted copy (amortised well under a microsecond per request). A size fires when it is at
least ``min_bytes`` and more than ``threshold`` scaled MADs above the median, once the route has
``min_samples`` sizes. The median and MAD move little under a few outliers (their breakdown point
is 50 %), so an attack cannot drag the baseline up with a handful of huge bodies.

Memory: ``max_routes`` x 2 rings of ``samples`` integers.
"""

from __future__ import annotations

from typing import ClassVar

from bastion.config.monitoring import PayloadConfig
from bastion.observability.alerts.model import Alert
from bastion.observability.detect.lru import Lru

_MAD_TO_SIGMA = 1.4826  # the MAD of a normal distribution is 0.6745 sigma


class _Sizes:
    __slots__ = ("mad", "median", "n", "pos", "ring", "stale")

    def __init__(self, capacity: int) -> None:
        self.ring = [0] * capacity
        self.pos = 0
        self.n = 0
        self.stale = 0
        self.median = 0.0
        self.mad = 0.0

    def add(self, size: int) -> None:
        ring = self.ring
        ring[self.pos] = size
        self.pos = (self.pos + 1) % len(ring)
        if self.n < len(ring):
            self.n += 1
        self.stale += 1

    def refresh(self) -> None:
        values = sorted(self.ring[: self.n])
        median = _median(values)
        self.median = median
        self.mad = _median(sorted(abs(v - median) for v in values))
        self.stale = 0


def _median(values: list[int] | list[float]) -> float:
    n = len(values)
    if n == 0:
        return 0.0
    middle = n // 2
    return float(values[middle]) if n % 2 else (values[middle - 1] + values[middle]) / 2


class PayloadDetector:
    detector: ClassVar[str] = "payload_outlier"

    def __init__(self, config: PayloadConfig) -> None:
        self.config = config
        self.routes: Lru[tuple[str, str], _Sizes] = Lru(config.max_routes * 2)
        self._every = max(1, config.samples // 8)

    def observe(
        self, route: str, direction: str, size: int, consumer: str | None, ip: str, now: float
    ) -> Alert | None:
        """Account one size (``direction`` is ``request`` or ``response``)."""
        key = (route, direction)
        sizes = self.routes.get(key)
        if sizes is None:
            sizes = _Sizes(self.config.samples)
            self.routes.put(key, sizes)
        alert = None
        config = self.config
        if sizes.n >= config.min_samples and size >= config.min_bytes:
            scale = max(sizes.mad * _MAD_TO_SIGMA, sizes.median * 0.05, 16.0)
            distance = (size - sizes.median) / scale
            if distance > config.threshold:
                alert = self.alert(route, direction, size, sizes, distance, consumer, ip, now)
        sizes.add(size)
        if sizes.stale >= self._every or sizes.n == config.min_samples:
            sizes.refresh()
        return alert

    def alert(
        self,
        route: str,
        direction: str,
        size: int,
        sizes: _Sizes,
        distance: float,
        consumer: str | None,
        ip: str,
        now: float,
    ) -> Alert:
        evidence: dict[str, object] = {
            "route": route,
            "direction": direction,
            "bytes": size,
            "median_bytes": round(sizes.median, 1),
            "mad_bytes": round(sizes.mad, 1),
            "distance_mads": round(distance, 1),
            "threshold_mads": self.config.threshold,
            "ip": ip,
        }
        if consumer is not None:
            evidence["consumer"] = consumer
        return Alert(
            detector=self.detector,
            key=f"payload:{route}:{direction}",
            summary=(
                f"{direction} of {size} bytes on route {route}, {distance:.0f} MADs above "
                f"its median of {sizes.median:.0f} bytes"
            ),
            timestamp=now,
            severity="warning",
            evidence=evidence,
        )
