"""Deduplication: one alert per key per cooldown period, in bounded memory.

A detection whose key fired less than ``period`` seconds ago is held back and counted; the next
one admitted carries that count (``Alert.repeats``), so nothing is lost from the record while
nobody is paged twice for one incident.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class Cooldown:
    """Remembers, for up to ``max_keys`` keys (least recently fired forgotten first), when each
    last fired and how many detections were held back since."""

    def __init__(
        self, period: float, *, max_keys: int = 10_000, clock: Callable[[], float] = time.time
    ) -> None:
        self.period = period
        self.max_keys = max_keys
        self.clock = clock
        self.suppressed = 0
        self._keys: OrderedDict[str, list[float]] = OrderedDict()  # key -> [fired_at, held]

    def admit(self, key: str, now: float | None = None) -> int | None:
        """The number of held-back repeats when ``key`` may fire now, else ``None`` (held)."""
        now = self.clock() if now is None else now
        entry = self._keys.get(key)
        if entry is not None and now - entry[0] < self.period:
            entry[1] += 1
            self.suppressed += 1
            return None
        held = int(entry[1]) if entry is not None else 0
        self._keys[key] = [now, 0]
        self._keys.move_to_end(key)
        if len(self._keys) > self.max_keys:
            self._keys.popitem(last=False)
        return held

    def __len__(self) -> int:
        return len(self._keys)
