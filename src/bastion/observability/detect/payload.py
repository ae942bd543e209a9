"""Payload-size outliers per route: request bodies and responses far above the route's median.

Robust statistics: each route and direction keeps its last ``samples`` sizes in a ring. The
median and the median absolute deviation (MAD) are recomputed from a sorted copy only when a
size of at least ``min_bytes`` arrives and ``samples // 8`` sizes came since the last time, so a
route whose sizes stay small never sorts anything, and any route sorts at most once per
``samples // 8`` sizes. A size fires when it is at
least ``min_bytes`` and more than ``threshold`` scaled MADs above the median, once the route has
``min_samples`` sizes. The median and MAD move little under a few outliers (their breakdown point
is 50 %), so an attack cannot drag the baseline up with a handful of huge bodies.

Memory: ``max_routes`` x 2 rings of ``samples`` integers.
"""

from __future__ import annotations

from typing import ClassVar

from bastion.config.monitoring import PayloadConfig
from bastion.observability.alerts.model import Alert

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
        pos = self.pos
        ring = self.ring
        ring[pos] = size
        pos += 1
        if pos == len(ring):
            pos = 0
        self.pos = pos
        if self.n < len(ring):
            self.n += 1
        self.stale += 1

    def refresh(self) -> None:
        values = sorted(self.ring[: self.n])
        median = _median(values)
        self.median = median
        self.mad = _median(sorted([abs(v - median) for v in values]))
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
        # Route names are few and fixed by the config (plus "-"), so plain dicts, bounded by
        # max_routes (the oldest route dropped first), are enough; no LRU upkeep per request.
        self._requests: dict[str, _Sizes] = {}
        self._responses: dict[str, _Sizes] = {}
        self._every = max(1, config.samples // 8)
        self._min_bytes = config.min_bytes

    @property
    def routes(self) -> list[tuple[str, str]]:
        """The (route, direction) pairs with sizes kept."""
        return [(r, "request") for r in self._requests] + [(r, "response") for r in self._responses]

    def sizes(self, route: str, direction: str) -> int:
        """How many sizes ``route`` keeps for ``direction`` (at most ``samples``)."""
        table = self._responses if direction == "response" else self._requests
        kept = table.get(route)
        return kept.n if kept is not None else 0

    def observe(
        self, route: str, direction: str, size: int, consumer: str | None, ip: str, now: float
    ) -> Alert | None:
        """Account one size (``direction`` is ``request`` or ``response``)."""
        table = self._responses if direction == "response" else self._requests
        sizes = table.get(route)
        if sizes is None:
            sizes = table[route] = _Sizes(self.config.samples)
            if len(table) > self.config.max_routes:
                del table[next(iter(table))]
        if size < self._min_bytes:
            sizes.add(size)
            return None
        alert = None
        config = self.config
        if sizes.n >= config.min_samples:
            # Only a candidate needs the statistics: routes whose sizes stay under min_bytes
            # never sort anything.
            if sizes.stale >= self._every or sizes.median == 0.0:
                sizes.refresh()
            scale = max(sizes.mad * _MAD_TO_SIGMA, sizes.median * 0.05, 16.0)
            distance = (size - sizes.median) / scale
            if distance > config.threshold:
                alert = self.alert(route, direction, size, sizes, distance, consumer, ip, now)
        sizes.add(size)
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
