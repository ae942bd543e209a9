"""Spikes of error statuses (4xx, 401, 403, 404, 429) per consumer, per client IP and overall.

Each (scope, subject, status class) has a counting window of ``window`` seconds and a baseline:
the exponentially weighted moving average of its earlier windows' counts (``smoothing`` is the
newest window's weight; windows without errors count as zero). A window fires once, when its
count reaches ``max(min_count, factor x baseline)``. New consumers and addresses start from a
zero baseline, so an attacker's fresh address fires at ``min_count``; the overall scope waits
``warmup_windows`` before its first alert, so a restart does not page anybody.

Cost: nothing for 1xx-3xx and 5xx answers; for a 4xx, one LRU update per scope and class.
Memory: ``max_keys`` windows of five numbers each.
"""

from __future__ import annotations

from typing import ClassVar

from bastion.config.monitoring import SpikesConfig
from bastion.observability.alerts.model import Alert
from bastion.observability.detect.lru import Lru


class _Window:
    __slots__ = ("baseline", "count", "fired", "index", "remote", "synced", "windows")

    def __init__(self, index: int) -> None:
        self.index = index
        self.count = 0  # this process's answers in the window
        self.remote = 0  # other instances' answers in it (shared mode, as of the last sync)
        self.synced = 0  # of ``count``, how many were already added to the shared total
        self.baseline = 0.0
        self.windows = 0  # completed windows folded into the baseline
        self.fired = False


class SpikeDetector:
    """Counts error answers; returns an :class:`Alert` when a window spikes."""

    detector: ClassVar[str] = "spike"

    def __init__(self, config: SpikesConfig) -> None:
        self.config = config
        self.width = config.window
        self.keep = 1.0 - config.smoothing
        self.classes = frozenset(config.statuses)
        self.by_consumer = "consumer" in config.scopes
        self.by_ip = "ip" in config.scopes
        self.overall = "overall" in config.scopes
        self.windows: Lru[tuple[str, str, str], _Window] = Lru(config.max_keys)
        self._overall: dict[str, _Window] = {}
        self.shared = False  # set by the Redis sharing: then touched windows are remembered
        self._kinds: dict[int, tuple[str, ...]] = {
            status: tuple(c for c in ("4xx", str(status)) if c in self.classes)
            for status in range(400, 500)
        }
        self.dirty: dict[tuple[str, str, str], _Window] = {}

    def observe(self, status: int, consumer: str | None, ip: str, now: float) -> list[Alert]:
        """Account one answer; the alerts it triggers (usually none)."""
        classes = self._kinds.get(status)
        if not classes:
            return []
        index = int(now // self.width)
        alerts: list[Alert] = []
        for kind in classes:
            if self.overall:
                window = self._overall.get(kind)
                if window is None:
                    window = self._overall[kind] = _Window(index)
                self._count(window, index, ("overall", "*", kind), now, alerts)
            if self.by_ip:
                self._keyed("ip", ip, kind, index, now, alerts)
            if self.by_consumer and consumer is not None:
                self._keyed("consumer", consumer, kind, index, now, alerts)
        return alerts

    def _keyed(
        self, scope: str, subject: str, kind: str, index: int, now: float, alerts: list[Alert]
    ) -> None:
        key = (scope, subject, kind)
        window = self.windows.get(key)
        if window is None:
            window = _Window(index)
            self.windows.put(key, window)
        self._count(window, index, key, now, alerts)

    def _roll(self, window: _Window, index: int) -> None:
        """Fold the finished window (and any empty ones after it) into the baseline."""
        elapsed = index - window.index
        if elapsed <= 0:
            return
        keep = self.keep
        total = window.count + window.remote
        baseline = window.baseline * keep + total * (1.0 - keep)
        if elapsed > 1:
            baseline *= keep ** min(elapsed - 1, 1_000)
        window.baseline = baseline
        window.windows += elapsed
        window.index = index
        window.count = 0
        window.remote = 0
        window.synced = 0
        window.fired = False

    def _count(
        self,
        window: _Window,
        index: int,
        key: tuple[str, str, str],
        now: float,
        alerts: list[Alert],
    ) -> None:
        if window.index != index:
            self._roll(window, index)
        window.count += 1
        if self.shared:
            self.dirty[key] = window
        if not window.fired:
            alert = self.check(window, key, now)
            if alert is not None:
                alerts.append(alert)

    def check(self, window: _Window, key: tuple[str, str, str], now: float) -> Alert | None:
        """The alert when ``window`` (all instances' counts) has reached its threshold."""
        if window.fired:
            return None
        config = self.config
        scope, subject, kind = key
        overall = scope == "overall"
        floor = config.overall_min_count if overall else config.min_count
        threshold = max(float(floor), config.factor * window.baseline)
        if window.count + window.remote < threshold:
            return None
        if overall and window.windows < config.warmup_windows:
            return None
        window.fired = True
        return self.alert(scope, subject, kind, window, threshold, now)

    def alert(
        self, scope: str, subject: str, kind: str, window: _Window, threshold: float, now: float
    ) -> Alert:
        where = "all traffic" if scope == "overall" else f"{scope} {subject}"
        count = window.count + window.remote
        evidence: dict[str, object] = {
            "scope": scope,
            "status": kind,
            "count": count,
            "window_seconds": self.width,
            "baseline": round(window.baseline, 2),
            "threshold": round(threshold, 2),
        }
        if scope != "overall":
            evidence[scope] = subject
        return Alert(
            detector=self.detector,
            key=f"spike:{scope}:{subject}:{kind}",
            summary=(
                f"{kind} spike from {where}: {count} in {self.width:g} s "
                f"(baseline {window.baseline:.1f})"
            ),
            timestamp=now,
            severity="warning",
            evidence=evidence,
        )
